"""seal_evidence: re-verify what was stored, fix it under a Merkle root, stamp and log it."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from activities.heartbeat import heartbeating
from signgate.detectors.base import Evidence
from signgate.detectors.replay import IMAGE_KINDS, check_replay
from signgate.models import ArtifactKind, SealedEvidence, SealRequest
from signgate.sealing import seal_round


class EvidenceActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="seal_evidence")
    @reason_coded
    async def seal_evidence(self, request: SealRequest) -> SealedEvidence:
        async with heartbeating():
            return await asyncio.to_thread(self._seal, request)

    def _seal(self, request: SealRequest) -> SealedEvidence:
        deps = self._deps
        images = self._images(request)
        replay = check_replay(
            Evidence(request.session_id, request.submission.capture, images),
            deps.perceptual_index,
        )
        record = seal_round(
            deps.store,
            deps.signer,
            request.session_id,
            request.round,
            request.submission.artifacts,
            request.submission.capture,
            request.expected_nonce,
            extra_flags=replay.flags,
        )
        body = {**record.model_dump(mode="json"), "replay_explanations": replay.explanations}
        receipt = deps.ledger.append(
            request.session_id,
            "evidence_sealed",
            f"{request.session_id}:evidence_sealed:{request.round}",
            body,
        )
        # Recorded only after the seal: later sessions can find this round, this one never.
        deps.perceptual_index.record_round(request.session_id, replay.hashed)
        return SealedEvidence(**record.model_dump(), ledger=receipt)

    def _images(self, request: SealRequest) -> dict[ArtifactKind, bytes]:
        """The still images of the round (the perceptual replay check reads only these)."""
        images: dict[ArtifactKind, bytes] = {}
        for ref in request.submission.artifacts:
            if ref.kind in IMAGE_KINDS and self._deps.store.exists(ref.object_key):
                with self._deps.store.open(ref.object_key) as stream:
                    images[ref.kind] = stream.read()
        return images

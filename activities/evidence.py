"""seal_evidence: re-verify what was stored, fix it under a Merkle root, stamp and log it."""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import reason_coded
from signgate.models import SealedEvidence, SealRequest
from signgate.sealing import seal_round


class EvidenceActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="seal_evidence")
    @reason_coded
    async def seal_evidence(self, request: SealRequest) -> SealedEvidence:
        deps = self._deps
        record = await asyncio.to_thread(
            seal_round,
            deps.store,
            deps.signer,
            request.session_id,
            request.round,
            request.submission.artifacts,
            request.submission.capture,
            request.expected_nonce,
        )
        receipt = await asyncio.to_thread(
            deps.ledger.append,
            request.session_id,
            "evidence_sealed",
            f"{request.session_id}:evidence_sealed:{request.round}",
            record.model_dump(mode="json"),
        )
        return SealedEvidence(**record.model_dump(), ledger=receipt)

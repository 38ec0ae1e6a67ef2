"""`signgate demo`: three onboarding sessions through the gateway of the embedded stack.

A bona fide capture is accepted and unlocked, a deepfake is rejected, and a borderline
capture waits for a reviewer who approves it through the gateway. The captures come from
`cli/demo_media.py`: the local detectors judge their pixels and device signals, the
sandbox vendor (SIGNGATE_CHECK_PROVIDER=vendor) their `scenario` field.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from cli.demo_media import demo_capture
from signgate.client import GatewayClient
from signgate.ledger import open_ledger
from signgate.models import ArtifactRef, CaptureMetadata, Stage
from signgate.settings import Settings
from signgate.signer import KeyRing

SCENARIOS = ("bona_fide", "deepfake", "borderline")


class DemoSession(BaseModel):
    session_id: str
    scenario: str
    action: str
    ledger_seq: int | None
    attestation_valid: bool
    reviewed_by: str | None = None


class DemoReport(BaseModel):
    sessions: list[DemoSession]
    audit_verified: bool


@dataclass
class DemoKeys:
    app: str
    reviewer: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DemoKeys:
        return cls(app=settings.api_key_for("app"), reviewer=settings.api_key_for("reviewer"))


async def run_session(settings: Settings, keys: DemoKeys, scenario: str) -> DemoSession:
    """One session exactly as an onboarding app (and a reviewer) would drive it: through
    `signgate.client` alone, ending with the attestation checked against our public keys
    and the ledger entry it names."""
    keyring = KeyRing.from_dir(settings.keys_dir)
    async with GatewayClient(settings.gateway_url, keys.app) as app:
        created = await app.start_session(
            subject_ref=f"demo-user-{scenario}", intent="sign:demo-contract"
        )
        sid = created.session_id
        media = demo_capture(scenario, (await app.status(sid)).motion_challenge)
        refs: list[ArtifactRef] = []
        for kind, data in media.media.items():
            refs.append(await app.upload(sid, kind, data, media.content_type(kind)))
        capture = CaptureMetadata(
            challenge_nonce=created.challenge_nonce,
            scenario=scenario,
            device_signals=media.device_signals,
        )
        await app.submit(sid, refs, capture)
        status = await app.wait_for_decision(sid, include_review=True, timeout_s=120)
        reviewed_by = None
        if status.stage in (Stage.awaiting_review, Stage.escalated):
            async with GatewayClient(settings.gateway_url, keys.reviewer) as reviewer:
                await reviewer.review(sid, approve=True, reason="demo: selfie matches the ID")
            status = await app.wait_for_decision(sid, timeout_s=60)
            reviewed_by = ",".join(r.reviewer_id for r in status.reviews) or None
        attestation_valid = False
        if status.stage is Stage.accepted:
            await app.verified_attestation(sid, keyring, ledger=open_ledger(settings, None))
            attestation_valid = True
    return DemoSession(
        session_id=sid,
        scenario=scenario,
        action=status.decision.action.value if status.decision else status.stage.value,
        ledger_seq=status.decision_receipt.seq if status.decision_receipt else None,
        attestation_valid=attestation_valid,
        reviewed_by=reviewed_by,
    )


async def run_demo(settings: Settings) -> DemoReport:
    keys = DemoKeys.from_settings(settings)
    sessions = [await run_session(settings, keys, scenario) for scenario in SCENARIOS]
    report = open_ledger(settings, None).verify(KeyRing.from_dir(settings.keys_dir))
    return DemoReport(sessions=sessions, audit_verified=report.ok)

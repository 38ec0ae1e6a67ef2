"""Which artifacts a reviewer looks at: those of the session's latest submitted round.

Read from the session's Temporal history (the `evidence_submitted` signals), through the
gateway's own Temporal access and by name, never by importing workflow code. Only keys
and hashes travel there; the bytes come from the evidence store, content-addressed, so a
key names exactly the bytes that were sealed.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from gateway.onboarding import TemporalAccess, _temporal_errors, workflow_id
from signgate.models import ArtifactKind, ArtifactRef, EvidenceSubmission
from workers.client import decode_payloads

SIGNAL = "evidence_submitted"


async def latest_artifacts(
    temporal: TemporalAccess, session_id: str
) -> dict[ArtifactKind, ArtifactRef]:
    """The artifacts of the last capture round, by kind ({} before any submission)."""
    client = await temporal.client()
    handle = client.get_workflow_handle(workflow_id(session_id))
    latest: EvidenceSubmission | None = None
    async with _temporal_errors(session_id):
        async for event in handle.fetch_history_events():
            if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                continue
            attributes = event.workflow_execution_signaled_event_attributes
            if attributes.signal_name != SIGNAL:
                continue
            latest = await decode_payloads(client, attributes.input, EvidenceSubmission)
    if latest is None:
        return {}
    return {ref.kind: ref for ref in latest.artifacts}

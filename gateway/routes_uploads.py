"""Direct uploads: a presigned S3 PUT so media go from the client straight to the bucket.

The gateway does not see those bytes as they are sent; it signs a URL bound to the content
hash (S3 refuses a body that does not match it) and the announced size. At submit it
reads what arrived into the locked bucket through the same content checks as an upload
it streams (`S3EvidenceStore.ingest_staged`, from `submit_capture`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import Refusal
from gateway.routes_sessions import (
    _MAX_CONTENT_TYPE_CHARS,
    AppKey,
    GatewayDep,
    SessionId,
    _awaiting_capture,
    _expected_sha256,
)
from gateway.state import bind_session
from signgate.evidence_s3 import PresignedUpload, S3EvidenceStore
from signgate.models import ArtifactKind, ArtifactRef

router = APIRouter(prefix="/v1/sessions", tags=["uploads"])


class UploadIntent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sha256: str
    size_bytes: int = Field(ge=0)
    content_type: str = Field(default="application/octet-stream", max_length=127)


class DirectUpload(BaseModel):
    """Where and how to PUT, and the ref to submit once the PUT succeeded."""

    upload: PresignedUpload
    ref: ArtifactRef


@router.post(
    "/{session_id}/evidence/{kind}/upload-url",
    status_code=201,
    summary="A presigned S3 PUT for one artifact (SIGNGATE_EVIDENCE=s3). Roles: app",
)
async def upload_url(
    session_id: SessionId,
    kind: ArtifactKind,
    intent: Annotated[UploadIntent, Body()],
    key: AppKey,
    gateway: GatewayDep,
) -> DirectUpload:
    bind_session(session_id)
    # Tenant and stage first: another tenant's caller learns nothing, not even the backend.
    await _awaiting_capture(gateway.sessions, key, session_id)
    store = gateway.store
    if not isinstance(store, S3EvidenceStore):
        raise Refusal(409, "direct_upload_unsupported", "direct uploads need SIGNGATE_EVIDENCE=s3")
    sha256 = _expected_sha256(intent.sha256)
    max_bytes = gateway.settings.max_upload_bytes[kind]
    if intent.size_bytes > max_bytes:
        raise Refusal(413, "evidence_too_large", f"{kind.value} is limited to {max_bytes} bytes")
    content_type = intent.content_type[:_MAX_CONTENT_TYPE_CHARS]
    upload = store.presign_upload(session_id, sha256, intent.size_bytes, content_type)
    ref = ArtifactRef(
        kind=kind,
        sha256=sha256,
        size_bytes=intent.size_bytes,
        content_type=content_type,
        object_key=upload.object_key,
    )
    return DirectUpload(upload=upload, ref=ref)

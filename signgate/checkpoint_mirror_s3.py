"""The checkpoint mirror on S3: write-once objects in the Object Lock evidence bucket.

Copies go under `checkpoints/` in the evidence bucket, whose Object Lock default retention
(COMPLIANCE, set by `S3EvidenceStore.ensure_buckets`) pins every version: a copy can be
hidden behind a newer version or a delete marker, never removed or changed, and a newer
differing version reads back as a fork in `mirror_checkpoints`. A bucket without Object
Lock is refused, since a mirror its writers can delete would only look like one. Kept
apart from `signgate.checkpoint_mirror` so the directory mirror never loads boto3.
"""

from __future__ import annotations

import hashlib
from typing import Any

from botocore.exceptions import ClientError

from signgate.errors import Fault
from signgate.evidence_s3 import _MISSING, _code, b64_sha256, s3_client
from signgate.settings import Settings


class S3CheckpointMirror:
    """Checkpoint copies as objects `checkpoints/<name>` in an Object Lock bucket."""

    PREFIX = "checkpoints/"

    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._require_lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> S3CheckpointMirror:
        """The evidence bucket of the settings (`s3_bucket`, `s3_endpoint_url`)."""
        return cls(s3_client(settings), settings.s3_bucket)

    def _require_lock(self) -> None:
        try:
            config = self._s3.get_object_lock_configuration(Bucket=self._bucket)
        except ClientError as err:
            raise Fault(
                f"bucket {self._bucket} has no Object Lock configuration ({_code(err)})",
                reason="checkpoint_mirror_unlocked",
            ) from err
        lock = config.get("ObjectLockConfiguration", {})
        if lock.get("ObjectLockEnabled") != "Enabled" or "DefaultRetention" not in lock.get(
            "Rule", {}
        ):
            raise Fault(
                f"bucket {self._bucket} has no Object Lock default retention",
                reason="checkpoint_mirror_unlocked",
            )

    def read(self, name: str) -> bytes | None:
        key = self.PREFIX + name
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise Fault(f"S3 GET {key}: {_code(err)}", reason="checkpoint_mirror_fault") from err
        return bytes(body.read())

    def write_once(self, name: str, data: bytes) -> bool:
        """Create-only PUT (`If-None-Match: *`) with a checksum S3 verifies on arrival."""
        key = self.PREFIX + name
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64_sha256(hashlib.sha256(data).hexdigest()),
                IfNoneMatch="*",
            )
        except ClientError as err:
            if _code(err) in {"PreconditionFailed", "ConditionalRequestConflict"}:
                return False
            raise Fault(f"S3 PUT {key}: {_code(err)}", reason="checkpoint_mirror_fault") from err
        return True

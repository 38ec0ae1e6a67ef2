"""Evidence in S3 under Object Lock (COMPLIANCE mode): the production backend.

Two buckets:
- the evidence bucket (`s3_bucket`): Object Lock on, a COMPLIANCE default retention of
  `evidence_retention_days`, so nobody (root included) can delete or overwrite a stored
  version before it expires. Keys are the same as the local store's
  (`sessions/<session>/sha256/<hex>`, SGE1 ciphertext under the session's data key), plus
  `claims/<hex>` (which session first submitted a content hash).
- the staging bucket (`<s3_bucket>-incoming`, no lock): where clients upload directly with
  a presigned PUT. It holds plaintext only until the session is sealed, which is why it
  cannot be the locked bucket: locked plaintext could never be erased.

Every PUT carries `ChecksumSHA256`, which S3 verifies against the body it received. Before
a session is sealed, a staged upload is checked server side (HEAD: size, and a checksum S3
verified equal to the content hash), re-hashed while it is encrypted into the evidence
bucket, and only then removed from staging. Overwrites are refused with `If-None-Match: *`
(a versioned bucket would otherwise take a new version on top of a locked one).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, FlexibleChecksumError

from signgate.envelope import DataKeys
from signgate.errors import BadInput, Fault, SigngateError
from signgate.evidence import (
    READ_CHUNK_BYTES,
    SPOOL_BYTES,
    EvidenceHashMismatch,
    EvidenceMissing,
    HashedUpload,
    UploadingStore,
    _valid_sha256,
    decrypt_to_spool,
    object_key_for,
    parse_object_key,
    valid_claim,
    verify_stream,
    write_batched,
)
from signgate.models import ArtifactKind, ArtifactRef, Frozen
from signgate.settings import Settings

PRESIGN_EXPIRES_S = 15 * 60
_MISSING = {"404", "NoSuchKey", "NotFound"}


class EvidenceUploadIncomplete(EvidenceHashMismatch):
    """A direct upload that arrived with another size than the one the client announced."""

    reason = "evidence_upload_incomplete"


class PresignedUpload(Frozen):
    """What a client needs to PUT one artifact straight into the staging bucket."""

    url: str
    method: str
    headers: dict[str, str]
    object_key: str
    expires_in_s: int


def b64_sha256(hex_digest: str) -> str:
    """S3's spelling of a SHA-256 checksum: base64 of the raw digest."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def s3_client(settings: Settings) -> Any:
    """The boto3 client the settings name (endpoint, region); shared by every S3 user."""
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        config=Config(signature_version="s3v4", retries={"max_attempts": 4}),
    )


def _fault(operation: str, key: str, err: ClientError) -> Fault:
    """An S3 failure that is not about the evidence itself: retryable, then review."""
    return Fault(f"S3 {operation} {key}: {_code(err)}", reason="evidence_store_fault")


class S3EvidenceStore(UploadingStore):
    """`EvidenceStore` on S3. Thread-safe: boto3 clients are, and nothing else is shared."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        data_keys: DataKeys,
        retention_days: int,
        staging_bucket: str | None = None,
    ) -> None:
        self._s3 = client
        self._bucket = bucket
        self._staging = staging_bucket or f"{bucket}-incoming"
        self._data_keys = data_keys
        self._retention_days = retention_days

    @classmethod
    def from_settings(cls, settings: Settings, data_keys: DataKeys) -> S3EvidenceStore:
        client = s3_client(settings)
        store = cls(client, settings.s3_bucket, data_keys, settings.evidence_retention_days)
        store.ensure_buckets()
        return store

    @property
    def data_keys(self) -> DataKeys:
        return self._data_keys

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def staging_bucket(self) -> str:
        return self._staging

    def ensure_buckets(self) -> None:
        """Create both buckets if needed and (re)state the lock rule; idempotent."""
        self._create_bucket(self._bucket, locked=True)
        self._s3.put_object_lock_configuration(
            Bucket=self._bucket,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": self._retention_days}},
            },
        )
        self._create_bucket(self._staging, locked=False)

    def _create_bucket(self, name: str, locked: bool) -> None:
        args: dict[str, Any] = {"Bucket": name, "ObjectLockEnabledForBucket": locked}
        region = self._s3.meta.region_name
        if region and region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._s3.create_bucket(**args)
        except ClientError as err:
            if _code(err) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    # ------------------------------------------------------------------ writing

    def _new_upload(
        self, kind: ArtifactKind, expected: str, max_bytes: int, session_id: str | None
    ) -> HashedUpload:
        """Spooled (encrypting) while hashed, then one verified, create-only PUT."""
        return _S3Upload(self, kind, expected, max_bytes, session_id)

    def _put_once(self, key: str, body: BinaryIO) -> None:
        """PUT with a server-verified checksum; an existing key is kept, never replaced."""
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(READ_CHUNK_BYTES), b""):
            digest.update(chunk)
        body.seek(0)
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64_sha256(digest.hexdigest()),
                IfNoneMatch="*",
            )
        except ClientError as err:
            if _code(err) not in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise _fault("refused", key, err) from err

    # ------------------------------------------------------------------ direct uploads

    def presign_upload(
        self, session_id: str, sha256: str, size_bytes: int, content_type: str
    ) -> PresignedUpload:
        """A presigned PUT into staging; S3 refuses a body that misses the signed checksum."""
        digest = _valid_sha256(sha256)
        if size_bytes < 0:
            raise BadInput("size_bytes must be >= 0", reason="bad_input")
        key = object_key_for(digest, session_id)
        checksum = b64_sha256(digest)
        url = self._s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._staging,
                "Key": key,
                "ChecksumAlgorithm": "SHA256",
                "ChecksumSHA256": checksum,
                "ContentType": content_type,
                "ContentLength": size_bytes,
            },
            ExpiresIn=PRESIGN_EXPIRES_S,
        )
        headers = {
            "x-amz-checksum-sha256": checksum,
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "Content-Type": content_type,
        }
        return PresignedUpload(
            url=url, method="PUT", headers=headers, object_key=key, expires_in_s=PRESIGN_EXPIRES_S
        )

    def _ingest(self, object_key: str, expected_size: int | None) -> None:
        """Move a direct upload from staging into the locked bucket, verified and encrypted.

        Refused with a reason code if it is missing (`evidence_missing`), of another size
        (`evidence_upload_incomplete`) or without a server-verified checksum equal to its
        content hash (`evidence_hash_mismatch`); the bytes are re-hashed on the way too.
        """
        session_id, sha256 = parse_object_key(object_key)
        size = self._staged_size(object_key, expected_size)
        body = self._s3.get_object(Bucket=self._staging, Key=object_key)["Body"]
        kind = ArtifactKind.selfie  # only names temp files; the ref is not kept
        with self._upload(kind, sha256, size, session_id) as upload:
            try:
                for chunk in iter(lambda: body.read(READ_CHUNK_BYTES), b""):
                    upload.write(chunk)
            except FlexibleChecksumError as err:  # botocore checks S3's checksum as it reads
                raise EvidenceHashMismatch(f"{object_key} does not match its checksum") from err
            upload.commit()
        self._s3.delete_object(Bucket=self._staging, Key=object_key)

    async def ingest_staged(
        self, ref: ArtifactRef, inspect: Callable[[AsyncIterable[bytes]], AsyncIterable[bytes]]
    ) -> None:
        """Ingest a direct upload now, its bytes passed through `inspect` on the way.

        The gateway calls this at submit with the content checks an upload through the
        gateway gets while it streams (`gateway.uploads.Inspection`): a direct upload never
        passed them. Whatever is refused (the content, the size, the hash) is deleted from
        staging, so nothing of it is kept; a fault (S3 unreachable) leaves it for a retry.
        An object already in the locked bucket has nothing left to check.
        """
        key = ref.object_key
        if await asyncio.to_thread(self._head, self._bucket, key):
            return
        session_id, sha256 = parse_object_key(key)
        try:
            size = await asyncio.to_thread(self._staged_size, key, ref.size_bytes)
            response = await asyncio.to_thread(self._s3.get_object, Bucket=self._staging, Key=key)
            body = response["Body"]

            async def staged() -> AsyncIterator[bytes]:
                while chunk := await asyncio.to_thread(body.read, READ_CHUNK_BYTES):
                    yield chunk

            with self._upload(ref.kind, sha256, size, session_id) as upload:
                try:
                    await write_batched(upload, inspect(staged()))
                except FlexibleChecksumError as err:
                    raise EvidenceHashMismatch(f"{key} does not match its checksum") from err
                await asyncio.to_thread(upload.commit)
        except SigngateError as err:
            if err.http_status < 500:
                await asyncio.to_thread(self._s3.delete_object, Bucket=self._staging, Key=key)
            raise
        await asyncio.to_thread(self._s3.delete_object, Bucket=self._staging, Key=key)

    def _staged_size(self, object_key: str, expected_size: int | None) -> int:
        """A staged upload's size, once S3 has shown it is there, of `expected_size` (when
        given), with a checksum S3 verified equal to its content hash."""
        _, sha256 = parse_object_key(object_key)
        try:
            head = self._s3.head_object(
                Bucket=self._staging, Key=object_key, ChecksumMode="ENABLED"
            )
        except ClientError as err:
            if _code(err) in _MISSING:
                raise EvidenceMissing(f"no evidence object {object_key}") from err
            raise _fault("HEAD", object_key, err) from err
        if expected_size is not None and head["ContentLength"] != expected_size:
            raise EvidenceUploadIncomplete(
                f"{object_key} arrived with {head['ContentLength']} bytes, not {expected_size}"
            )
        if head.get("ChecksumSHA256") != b64_sha256(sha256):
            raise EvidenceHashMismatch(f"{object_key} has no server-verified matching checksum")
        return int(head["ContentLength"])

    # ------------------------------------------------------------------ reading

    def open(self, object_key: str) -> BinaryIO:
        """The plaintext (decrypted; a staged upload is ingested first)."""
        session_id, _ = parse_object_key(object_key)
        if session_id is not None:
            self._data_keys.key_for(session_id)  # an erased session stops here
        if not self._head(self._bucket, object_key):
            self._ingest(object_key, expected_size=None)
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=object_key)["Body"]
        except ClientError as err:
            if _code(err) in _MISSING:
                raise EvidenceMissing(f"no evidence object {object_key}") from err
            raise _fault("GET", object_key, err) from err
        if session_id is not None:
            return decrypt_to_spool(self._data_keys, object_key, body)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        for chunk in iter(lambda: body.read(READ_CHUNK_BYTES), b""):
            spool.write(chunk)
        spool.seek(0)
        return cast(BinaryIO, spool)

    def exists(self, object_key: str) -> bool:
        parse_object_key(object_key)
        return self._head(self._bucket, object_key) or self._head(self._staging, object_key)

    def verify(self, ref: ArtifactRef) -> bool:
        """Server-side check of a direct upload (size, checksum), then re-hash the bytes."""
        parse_object_key(ref.object_key)
        if not self._head(self._bucket, ref.object_key):
            self._ingest(ref.object_key, expected_size=ref.size_bytes)
        with self.open(ref.object_key) as stored:
            return verify_stream(stored, ref)

    def _head(self, bucket: str, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if _code(err) in _MISSING:
                return False
            raise _fault("HEAD", key, err) from err
        return True

    # ------------------------------------------------------------------ claims

    def claim(self, sha256: str, session_id: str) -> str:
        """First claimant of a content hash wins, by a create-only PUT under Object Lock."""
        digest = valid_claim(sha256, session_id)
        key = f"claims/{digest}"
        with tempfile.TemporaryFile() as body:
            body.write(session_id.encode("utf-8"))
            body.seek(0)
            self._put_once(key, cast(BinaryIO, body))
        owner = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        return bytes(owner).decode("utf-8")


class _S3Upload(HashedUpload):
    """One upload being spooled to a temp file (ciphertext for a session) while hashed."""

    def __init__(
        self,
        store: S3EvidenceStore,
        kind: ArtifactKind,
        expected: str,
        max_bytes: int,
        session_id: str | None,
    ) -> None:
        super().__init__(kind, expected, max_bytes, session_id)
        self._store = store
        key = store.data_keys.key_for(session_id) if session_id is not None else None
        self._start(cast(BinaryIO, tempfile.TemporaryFile(prefix=f"{kind.value}.")), key)

    def commit(self) -> None:
        self._check_hash()
        if self._encryptor is not None:
            self._encryptor.finish()
        self._file.seek(0)
        self._store._put_once(self._object_key, self._file)

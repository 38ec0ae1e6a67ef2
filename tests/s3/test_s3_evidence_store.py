"""S3EvidenceStore against moto's S3 server over real HTTP on loopback."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from signgate.envelope import EvidenceErased, EvidenceUndecryptable
from signgate.evidence import EvidenceHashMismatch, EvidenceMissing, object_key_for
from signgate.evidence_s3 import EvidenceUploadIncomplete, S3EvidenceStore, b64_sha256
from signgate.models import ArtifactKind, ArtifactRef, CaptureMetadata
from signgate.sealing import seal_round
from signgate.signer import Signer

SELFIE = ArtifactKind.selfie
SESSION = "sess-s3-0001"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def staged_ref(data: bytes, object_key: str) -> ArtifactRef:
    return ArtifactRef(
        kind=SELFIE,
        sha256=sha(data),
        size_bytes=len(data),
        content_type="image/jpeg",
        object_key=object_key,
    )


def direct_upload(store: S3EvidenceStore, data: bytes, body: bytes | None = None) -> ArtifactRef:
    """Presign for `data`, then PUT `body` (default: `data`) the way a client would."""
    upload = store.presign_upload(SESSION, sha(data), len(data), "image/jpeg")
    sent = data if body is None else body
    response = httpx.put(upload.url, content=sent, headers=upload.headers, timeout=10)
    assert response.status_code == 200, response.text
    return staged_ref(data, upload.object_key)


def test_session_upload_is_ciphertext_at_rest_and_plaintext_when_read(
    s3_store: S3EvidenceStore, s3: Any
) -> None:
    data = b"a selfie" * 1000
    ref = s3_store.put_bytes(SELFIE, data, "image/jpeg", session_id=SESSION)
    assert ref.object_key == object_key_for(sha(data), SESSION)
    stored = raw(s3, s3_store.bucket, ref.object_key)
    assert stored.startswith(b"SGE1") and data not in stored
    with s3_store.open(ref.object_key) as plain:
        assert plain.read() == data
    assert s3_store.verify(ref)


def test_every_put_carries_a_sha256_checksum_of_what_is_stored(
    s3_store: S3EvidenceStore, s3: Any
) -> None:
    ref = s3_store.put_bytes(SELFIE, b"checksummed", "image/jpeg", session_id=SESSION)
    head = s3.head_object(Bucket=s3_store.bucket, Key=ref.object_key, ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64_sha256(sha(raw(s3, s3_store.bucket, ref.object_key)))


def test_bucket_locks_every_object_in_compliance_mode(s3_store: S3EvidenceStore, s3: Any) -> None:
    rule = s3.get_object_lock_configuration(Bucket=s3_store.bucket)["ObjectLockConfiguration"]
    assert rule["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert rule["Rule"]["DefaultRetention"]["Days"] == 1
    ref = s3_store.put_bytes(SELFIE, b"locked", "image/jpeg", session_id=SESSION)
    head = s3.head_object(Bucket=s3_store.bucket, Key=ref.object_key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] is not None


def test_locked_version_cannot_be_deleted(s3_store: S3EvidenceStore, s3: Any) -> None:
    ref = s3_store.put_bytes(SELFIE, b"keep me", "image/jpeg", session_id=SESSION)
    versions = s3.list_object_versions(Bucket=s3_store.bucket, Prefix=ref.object_key)["Versions"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(
            Bucket=s3_store.bucket, Key=ref.object_key, VersionId=versions[0]["VersionId"]
        )
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert s3_store.verify(ref)


def test_overwrite_of_a_stored_object_is_refused(s3_store: S3EvidenceStore, s3: Any) -> None:
    ref = s3_store.put_bytes(SELFIE, b"first", "image/jpeg", session_id=SESSION)
    before = raw(s3, s3_store.bucket, ref.object_key)
    with pytest.raises(ClientError) as refused:
        s3.put_object(
            Bucket=s3_store.bucket,
            Key=ref.object_key,
            Body=b"replacement",
            IfNoneMatch="*",
            ChecksumAlgorithm="SHA256",
        )
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    # Our own second put of the same content keeps the first version too.
    s3_store.put_bytes(SELFIE, b"first", "image/jpeg", session_id=SESSION)
    versions = s3.list_object_versions(Bucket=s3_store.bucket, Prefix=ref.object_key)["Versions"]
    assert len(versions) == 1
    assert raw(s3, s3_store.bucket, ref.object_key) == before


def test_a_forged_version_on_top_does_not_verify(s3_store: S3EvidenceStore, s3: Any) -> None:
    """Someone with plain PUT rights adds a version: the AEAD tag gives it away."""
    ref = s3_store.put_bytes(SELFIE, b"genuine", "image/jpeg", session_id=SESSION)
    forged = b"SGE1" + bytes(40)
    s3.put_object(Bucket=s3_store.bucket, Key=ref.object_key, Body=forged)
    with pytest.raises(EvidenceUndecryptable):
        s3_store.verify(ref)


def test_direct_upload_is_checked_encrypted_and_moved_out_of_staging(
    s3_store: S3EvidenceStore, s3: Any
) -> None:
    data = b"direct selfie" * 500
    ref = direct_upload(s3_store, data)
    assert s3_store.exists(ref.object_key)
    assert s3_store.verify(ref)
    assert data not in raw(s3, s3_store.bucket, ref.object_key)
    staged = s3.list_objects_v2(Bucket=s3_store.staging_bucket).get("Contents", [])
    assert staged == []


def test_direct_upload_with_wrong_bytes_for_its_checksum_is_refused(
    s3_store: S3EvidenceStore, s3: Any
) -> None:
    """Real S3 refuses this PUT itself (BadDigest); moto keeps the claimed checksum, so
    this proves the second line: the bytes are re-hashed before they are accepted."""
    data = b"the real selfie"
    ref = direct_upload(s3_store, data, body=b"THE FAKE SELFIE")
    with pytest.raises(EvidenceHashMismatch) as refused:
        s3_store.verify(ref)
    assert refused.value.reason == "evidence_hash_mismatch"
    assert s3.list_objects_v2(Bucket=s3_store.bucket).get("Contents", []) == []


def test_direct_upload_without_the_checksum_is_refused(s3_store: S3EvidenceStore, s3: Any) -> None:
    data = b"uploaded without checksum headers"
    upload = s3_store.presign_upload(SESSION, sha(data), len(data), "image/jpeg")
    s3.put_object(Bucket=s3_store.staging_bucket, Key=upload.object_key, Body=data)
    ref = staged_ref(data, upload.object_key)
    with pytest.raises(EvidenceHashMismatch):
        s3_store.verify(ref)


def seal(store: S3EvidenceStore, refs: list[ArtifactRef], tmp_signer: Signer) -> None:
    capture = CaptureMetadata(challenge_nonce="nonce-1", scenario="bona_fide")
    seal_round(store, tmp_signer, SESSION, 1, refs, capture, "nonce-1")


@pytest.fixture
def signer(tmp_path: Any) -> Signer:
    return Signer.load_or_create(tmp_path / "signer")


def test_short_direct_upload_is_refused_at_seal_time(
    s3_store: S3EvidenceStore, signer: Signer
) -> None:
    data = b"0123456789" * 100
    short = direct_upload(s3_store, data, body=data[:500])
    with pytest.raises(EvidenceUploadIncomplete) as refused:
        seal(s3_store, [short], signer)
    assert refused.value.reason == "evidence_upload_incomplete"


def test_missing_direct_upload_is_refused_at_seal_time(
    s3_store: S3EvidenceStore, signer: Signer
) -> None:
    data = b"never uploaded"
    upload = s3_store.presign_upload(SESSION, sha(data), len(data), "image/jpeg")
    ref = staged_ref(data, upload.object_key)
    assert not s3_store.exists(ref.object_key)
    with pytest.raises(EvidenceMissing) as refused:
        seal(s3_store, [ref], signer)
    assert refused.value.reason == "evidence_missing"


def test_seal_over_direct_uploads_roots_the_plaintext_hashes(
    s3_store: S3EvidenceStore, signer: Signer
) -> None:
    refs = [direct_upload(s3_store, b"selfie one")]
    capture = CaptureMetadata(challenge_nonce="n", scenario="bona_fide")
    record = seal_round(s3_store, signer, SESSION, 1, refs, capture, "n")
    assert record.artifacts[0].sha256 == sha(b"selfie one")
    assert record.flags == []


def test_first_claim_of_a_content_hash_wins(s3_store: S3EvidenceStore) -> None:
    digest = sha(b"replayed")
    assert s3_store.claim(digest, "sess-first") == "sess-first"
    assert s3_store.claim(digest, "sess-second") == "sess-first"


def test_erased_session_cannot_be_read_or_uploaded_to(s3_store: S3EvidenceStore) -> None:
    ref = s3_store.put_bytes(SELFIE, b"to forget", "image/jpeg", session_id=SESSION)
    s3_store.data_keys.erase(SESSION, "subject request")
    with pytest.raises(EvidenceErased) as erased:
        s3_store.open(ref.object_key)
    assert erased.value.reason == "evidence_erased"
    with pytest.raises(EvidenceErased):
        s3_store.put_bytes(SELFIE, b"more", "image/jpeg", session_id=SESSION)
    assert s3_store.exists(ref.object_key)  # the locked ciphertext stays; it is just noise

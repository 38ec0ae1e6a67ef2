"""Checkpoints mirrored into the Object Lock evidence bucket (moto's S3 server, real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from cli.main import app
from signgate.audit_proofs import check_proof
from signgate.checkpoint_mirror import CheckpointFork, checkpoint_name, mirror_checkpoints
from signgate.checkpoint_mirror_s3 import S3CheckpointMirror
from signgate.errors import Fault
from signgate.evidence_s3 import S3EvidenceStore, b64_sha256
from signgate.hashing import sha256_hex
from signgate.ledger import SqliteLedger
from signgate.settings import get_settings
from signgate.signer import KeyRing, Signer
from tests.moto_s3 import unique_bucket


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    return Signer.load_or_create(tmp_path / "keys")


@pytest.fixture
def ledger(tmp_path: Path, signer: Signer) -> SqliteLedger:
    made = SqliteLedger(tmp_path / "ledger.db", signer, checkpoint_every=3)
    for i in range(7):
        made.append("s", "decision", f"k{i}", {"i": i})
    return made  # checkpoints of tree sizes 3 and 7


@pytest.fixture
def mirror(s3: Any, s3_store: S3EvidenceStore) -> S3CheckpointMirror:
    return S3CheckpointMirror(s3, s3_store.bucket)


def key(tree_size: int) -> str:
    return f"checkpoints/{checkpoint_name(tree_size)}"


def keys(s3: Any, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_mirror_writes_each_checkpoint_once_with_a_checksum(
    ledger: SqliteLedger,
    mirror: S3CheckpointMirror,
    s3: Any,
    s3_store: S3EvidenceStore,
    signer: Signer,
) -> None:
    assert mirror_checkpoints(ledger, mirror) == 2
    assert keys(s3, s3_store.bucket) == [key(3), key(7)]
    assert mirror_checkpoints(ledger, mirror) == 0
    versions = s3.list_object_versions(Bucket=s3_store.bucket, Prefix="checkpoints/")
    assert len(versions["Versions"]) == 2  # the second run wrote nothing, not even a version
    head = s3.head_object(Bucket=s3_store.bucket, Key=key(7), ChecksumMode="ENABLED")
    stored = mirror.read(checkpoint_name(7))
    assert stored is not None
    assert head["ChecksumSHA256"] == b64_sha256(sha256_hex(stored))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    keyring = KeyRing.from_pems([signer.public_key_pem()])
    assert "7 entries" in check_proof(json.loads(stored), keyring)
    ledger.checkpoint()
    assert mirror_checkpoints(ledger, mirror) == 1


def test_a_differing_copy_in_the_bucket_is_a_fork(
    ledger: SqliteLedger, mirror: S3CheckpointMirror, s3: Any, s3_store: S3EvidenceStore
) -> None:
    mirror_checkpoints(ledger, mirror)
    # Someone with bucket rights puts a new version on top (the locked one stays beneath).
    forged = s3.get_object(Bucket=s3_store.bucket, Key=key(3))["Body"].read()
    forged = forged.replace(b'"ledger_seq":4', b'"ledger_seq":5')
    s3.put_object(Bucket=s3_store.bucket, Key=key(3), Body=forged)
    with pytest.raises(CheckpointFork) as err:
        mirror_checkpoints(ledger, mirror)
    assert err.value.reason == "checkpoint_fork"


def test_a_mirrored_checkpoint_cannot_be_deleted(
    ledger: SqliteLedger, mirror: S3CheckpointMirror, s3: Any, s3_store: S3EvidenceStore
) -> None:
    mirror_checkpoints(ledger, mirror)
    versions = s3.list_object_versions(Bucket=s3_store.bucket, Prefix=key(3))["Versions"]
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=s3_store.bucket, Key=key(3), VersionId=versions[0]["VersionId"])
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    still = s3.get_object(Bucket=s3_store.bucket, Key=key(3), VersionId=versions[0]["VersionId"])
    assert still["Body"].read() == mirror.read(checkpoint_name(3))


def test_a_bucket_without_object_lock_is_refused(s3: Any) -> None:
    bucket = unique_bucket()
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(Fault) as err:
        S3CheckpointMirror(s3, bucket)
    assert err.value.reason == "checkpoint_mirror_unlocked"


def test_cli_mirrors_to_the_settings_bucket(
    ledger: SqliteLedger,
    s3: Any,
    s3_store: S3EvidenceStore,
    moto_s3_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIGNGATE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SIGNGATE_S3_ENDPOINT_URL", moto_s3_url)
    monkeypatch.setenv("SIGNGATE_S3_BUCKET", s3_store.bucket)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        args = ["audit", "mirror-checkpoints", "--s3", "--ledger", str(ledger.path)]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        assert f"2 checkpoints written to s3://{s3_store.bucket}" in first.output
        assert keys(s3, s3_store.bucket) == [key(3), key(7)]
        again = runner.invoke(app, args)
        assert again.exit_code == 0 and "0 checkpoints written" in again.output
        both = runner.invoke(app, [*args, str(tmp_path / "dir")])
        assert both.exit_code == 2  # a directory and --s3 at once is a usage error
    finally:
        get_settings.cache_clear()

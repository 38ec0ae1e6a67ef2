"""One fresh S3EvidenceStore per test: its own bucket pair on the shared moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from signgate.envelope import DataKeys, default_data_keys
from signgate.evidence_s3 import S3EvidenceStore
from tests.moto_s3 import s3_client, unique_bucket


@pytest.fixture
def s3(moto_s3_url: str) -> Any:
    return s3_client(moto_s3_url)


@pytest.fixture
def data_keys(tmp_path: Path) -> DataKeys:
    return default_data_keys(tmp_path / "keys")


@pytest.fixture
def s3_store(s3: Any, data_keys: DataKeys) -> S3EvidenceStore:
    store = S3EvidenceStore(s3, unique_bucket(), data_keys, retention_days=1)
    store.ensure_buckets()
    return store

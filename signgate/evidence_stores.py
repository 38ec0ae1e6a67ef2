"""Pick the evidence backend from the settings (`SIGNGATE_EVIDENCE=local|s3`).

Every process (gateway, worker, CLI) builds its store here, so all of them read and write
the same objects under the same data keys.
"""

from __future__ import annotations

from signgate.envelope import default_data_keys
from signgate.evidence import EvidenceStore, LocalEvidenceStore
from signgate.settings import Settings


def open_evidence_store(settings: Settings) -> EvidenceStore:
    data_keys = default_data_keys(settings.keys_dir)
    if settings.evidence == "s3":
        from signgate.evidence_s3 import S3EvidenceStore  # boto3 only when asked for

        return S3EvidenceStore.from_settings(settings, data_keys)
    return LocalEvidenceStore(settings.evidence_dir, data_keys)

"""What the activities stand on: one evidence store, one ledger, one signer, one vendor.

Built once per worker process from the settings, so every activity shares the same
connections and keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from signgate.detectors.replay import PerceptualIndex, open_perceptual_index
from signgate.evidence import EvidenceStore
from signgate.evidence_stores import open_evidence_store
from signgate.ledger import Ledger
from signgate.ledger_signer import open_signing_ledger
from signgate.settings import Settings
from signgate.signer import Signer
from signgate.vendor_client import VendorClient


@dataclass
class ActivityDeps:
    settings: Settings
    store: EvidenceStore
    ledger: Ledger
    signer: Signer
    vendor: VendorClient
    perceptual_index: PerceptualIndex

    @classmethod
    def from_settings(cls, settings: Settings) -> ActivityDeps:
        ledger, signer = open_signing_ledger(settings)  # first: a refusal mints no key
        return cls(
            settings=settings,
            store=open_evidence_store(settings),
            ledger=ledger,
            signer=signer,
            perceptual_index=open_perceptual_index(settings),
            vendor=VendorClient(
                settings.resolved_vendor_url,
                settings.vendor_api_key,
                settings.vendor_timeout_s,
            ),
        )

    async def aclose(self) -> None:
        await self.vendor.aclose()
        self.ledger.close()
        self.perceptual_index.close()

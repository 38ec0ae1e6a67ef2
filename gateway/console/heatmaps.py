"""Which heatmaps a reviewer may look at: those a check names in its explanations.

The deepfake detector keeps each region heatmap as a write-once evidence object and names
it in an explanation line (`<image>: region heatmap PNG kept as evidence sha256=<hex>
object_key=<key>`), so results and the ledger carry a reference, never bytes. An
explanation is a check result's text and may come from a vendor, so a line is honoured only
if its key is the content address of its hash (bare, or scoped to this very session): it
can then name no other bytes, and the media route re-hashes what it serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from signgate.evidence import object_key_for
from signgate.models import CheckResult

HEATMAP_LINE = re.compile(
    r"^(?P<image>[a-z_]+): region heatmap PNG kept as evidence "
    r"sha256=(?P<sha256>[0-9a-f]{64}) object_key=(?P<key>\S+)$"
)


@dataclass(frozen=True)
class HeatmapRef:
    label: str  # e.g. "deepfake heatmap: selfie"
    sha256: str
    object_key: str


def heatmap_refs(checks: list[CheckResult], session_id: str) -> list[HeatmapRef]:
    found: list[HeatmapRef] = []
    for check in checks:
        for line in check.explanations:
            match = HEATMAP_LINE.match(line)
            if match is None:
                continue
            sha256, key = match["sha256"], match["key"]
            if key not in (object_key_for(sha256), object_key_for(sha256, session_id)):
                continue
            label = f"{check.kind.value} heatmap: {match['image'].replace('_', ' ')}"
            if all(ref.sha256 != sha256 for ref in found):
                found.append(HeatmapRef(label, sha256, key))
    return found

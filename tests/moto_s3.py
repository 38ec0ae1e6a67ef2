"""moto's S3 server on loopback, once per test session (a pytest plugin: tests/conftest.py).

Real HTTP, real SigV4 signatures, real Object Lock and checksum handling as moto
implements them; each test takes its own bucket (random name) so tests never share state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from workers.ports import free_port

MOTO_REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_s3_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    # moto accepts any credentials; boto3 just needs some to sign with.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=MOTO_REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
    )


def unique_bucket() -> str:
    return f"evidence-{uuid.uuid4().hex[:16]}"

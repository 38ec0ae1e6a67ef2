"""Who the app's callback may name (SSRF guard) and what each answer means for retrying."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from signgate.errors import BadInput, Fault
from signgate.models import AppEvent, AppEventType
from signgate.outbound import (
    check_callback_url,
    check_resolved,
    judge,
    pinned_request,
    post_event,
)
from tests.support import serve_app


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://app.example.com/hooks", ["app.example.com"]),
        ("https://eu.app.example.com/hooks", ["*.app.example.com"]),
        ("https://APP.example.com:8443/hooks", ["app.example.com"]),
        ("http://127.0.0.1:9000/cb", ["127.0.0.1"]),
        ("http://localhost:9000/cb", ["localhost"]),
        ("http://[::1]:9000/cb", ["::1"]),
    ],
)
def test_listed_callback_is_allowed(url: str, allowed: list[str]) -> None:
    check_callback_url(url, allowed)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://evil.example.net/hooks", ["app.example.com"]),
        ("https://app.example.com.evil.net/", ["app.example.com"]),
        ("https://example.com/", ["*.example.com"]),  # a wildcard covers subdomains only
        ("http://127.0.0.1:9000/cb", []),  # loopback only if the list says so
        ("http://127.0.0.1:9000/cb", ["*.0.0.1"]),  # ... literally, never by wildcard
        ("http://127.0.0.1:9000/cb", ["localhost"]),
        ("http://169.254.169.254/latest/meta-data", ["app.example.com"]),
        ("http://app.example.com/hooks", ["app.example.com"]),  # https only off loopback
        ("https://user:pw@app.example.com/", ["app.example.com"]),
        ("ftp://app.example.com/", ["app.example.com"]),
        ("https://app.example.com:notaport/", ["app.example.com"]),
        ("not a url", ["app.example.com"]),
    ],
)
def test_unlisted_callback_is_refused(url: str, allowed: list[str]) -> None:
    with pytest.raises(BadInput) as raised:
        check_callback_url(url, allowed)
    assert raised.value.reason == "callback_url_not_allowed"
    assert raised.value.http_status == 422


def test_listed_name_resolving_into_our_network_is_refused() -> None:
    # This machine's own name is listed, but it resolves to loopback or a private address
    # (as a hostile DNS answer would): the resolved address is refused.
    name = socket.gethostname().lower()
    with pytest.raises(BadInput) as raised:
        check_resolved(name, 443, [name])
    assert raised.value.reason == "callback_url_not_allowed"


def test_listed_private_address_is_allowed_when_listed_itself() -> None:
    check_resolved("10.1.2.3", 443, ["10.1.2.3"])
    with pytest.raises(BadInput):
        check_resolved("10.1.2.3", 443, ["app.example.com"])


def test_listed_loopback_resolves_fine() -> None:
    check_resolved("127.0.0.1", 9000, ["127.0.0.1"])


def response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "https://app.example.com/"))


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    judge(response(status))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_server_trouble_is_retried(status: int) -> None:
    with pytest.raises(Fault) as raised:
        judge(response(status))
    assert raised.value.reason == f"callback_http_{status}"


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "callback_refused"),
        (404, "callback_refused"),
        (410, "callback_refused"),
        (301, "callback_redirected"),
        (307, "callback_redirected"),
    ],
)
def test_other_4xx_and_redirects_are_never_retried(status: int, reason: str) -> None:
    with pytest.raises(BadInput) as raised:
        judge(response(status))
    assert raised.value.reason == reason


def test_the_vetted_address_is_the_one_returned() -> None:
    assert check_resolved("127.0.0.1", 9000, ["127.0.0.1"]) == "127.0.0.1"
    assert check_resolved("10.1.2.3", 443, ["10.1.2.3"]) == "10.1.2.3"


@pytest.mark.parametrize(
    ("url", "address", "sent_to", "host", "extensions"),
    [
        (
            "https://app.example.com/hooks?x=1",
            "203.0.113.7",
            "https://203.0.113.7/hooks?x=1",
            "app.example.com",
            {"sni_hostname": "app.example.com"},
        ),
        (
            "https://app.example.com:8443/hooks",
            "2001:db8::7",
            "https://[2001:db8::7]:8443/hooks",
            "app.example.com:8443",
            {"sni_hostname": "app.example.com"},
        ),
        ("http://localhost:9000/cb", "127.0.0.1", "http://127.0.0.1:9000/cb", "localhost:9000", {}),
    ],
)
def test_a_delivery_is_aimed_at_the_vetted_address_under_the_apps_name(
    url: str, address: str, sent_to: str, host: str, extensions: dict[str, str]
) -> None:
    assert pinned_request(url, address) == (sent_to, {"Host": host}, extensions)


async def test_a_delivery_connects_to_the_vetted_address_without_a_second_lookup() -> None:
    """DNS rebinding: the name is resolved once, checked, and the POST goes to that
    address. Here the name cannot be resolved at all (`.invalid`), so a delivery that
    looked it up again could not connect; it reaches the server, which sees the name."""
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(dict(scope["headers"])[b"host"].decode())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    event = AppEvent(
        event_id="s1:decision",
        type=AppEventType.decision,
        session_id="s1",
        tenant_id="tenant-a",
        occurred_at=datetime(2026, 12, 2, tzinfo=UTC),
        data={},
    )
    async with serve_app(app) as base:
        port = urlsplit(base).port
        url = f"http://callback.invalid:{port}/hooks"
        async with httpx.AsyncClient() as client:
            with pytest.raises(Fault):  # looked up again, the name goes nowhere
                await post_event(client, url, event, "s" * 32, 1_700_000_000)
            status = await post_event(client, url, event, "s" * 32, 1_700_000_000, "127.0.0.1")
    assert status == 204
    assert seen == [f"callback.invalid:{port}"]

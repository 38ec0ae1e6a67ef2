"""Status events to the onboarding app: who may be called, what is sent, what a reply means.

A callback URL is a request the app makes us send from inside our network, so it is an
SSRF vector: it must name a host on the `callback_allowed_hosts` list (exact names, or
`*.example.com` for subdomains), over https. Loopback is refused unless the list names it
literally (`127.0.0.1`, `::1` or `localhost`; a wildcard never covers it), and then plain
http is allowed too, for local development and tests. The list is checked when the session
is created (422 `callback_url_not_allowed`) and again, with the host's resolved addresses,
before every delivery, because settings change and DNS answers change; the delivery then
connects to the address that was checked, not to whatever a second lookup answers.

A delivery is one POST of the event's canonical JSON, signed with our scheme
(`X-Signature: t=,v1=`, the first of `webhook_secrets`, a fresh `t` per attempt) and
carrying `X-Event-Id` / `Idempotency-Key` (the same on every retry) and `X-Event-Type`.
2xx is delivered; 408, 429, 5xx, timeouts and connection errors are worth a retry
(`Fault`); any other 4xx and any redirect never will be (`BadInput`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from signgate.canonical import canonical_json
from signgate.errors import BadInput, Fault
from signgate.models import AppEvent
from signgate.webhooks import SIGNATURE_HEADER, sign_webhook

EVENT_ID_HEADER = "X-Event-Id"
EVENT_TYPE_HEADER = "X-Event-Type"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_TIMEOUT_S = 10.0
RETRYABLE_4XX = frozenset({408, 429})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class CallbackNotAllowed(BadInput):
    reason = "callback_url_not_allowed"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    ip = _ip(host)
    return host in _LOOPBACK_NAMES or (ip is not None and ip.is_loopback)


def _host_listed(host: str, allowed_hosts: Sequence[str]) -> bool:
    for entry in (e.strip().lower() for e in allowed_hosts):
        if entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]) and not _is_loopback(host):
            return True
    return False


def check_callback_url(url: str, allowed_hosts: Sequence[str]) -> str:
    """Return the URL's host if the app may be called there; `callback_url_not_allowed` if not."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError as err:
        raise CallbackNotAllowed(f"callback_url is not a URL: {err}") from err
    if parts.scheme not in ("https", "http") or not host:
        raise CallbackNotAllowed("callback_url must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackNotAllowed("callback_url must not carry credentials")
    if not _host_listed(host, allowed_hosts):
        raise CallbackNotAllowed(f"callback host {host!r} is not in callback_allowed_hosts")
    if parts.scheme == "http" and not _is_loopback(host):
        raise CallbackNotAllowed("callback_url must be https (plain http only for loopback)")
    return host


def check_resolved(host: str, port: int | None, allowed_hosts: Sequence[str]) -> str:
    """The address to connect to: the first the host resolves to, once every address it
    resolves to is allowed. A listed name that resolves into our own network (loopback,
    private, link-local) is refused unless that address itself is listed: a DNS answer
    must not widen the allow-list. The delivery then connects to this address and no
    other (`post_event`): a second lookup could answer differently (DNS rebinding)."""
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except OSError as err:
        raise Fault(f"cannot resolve callback host: {err}", reason="callback_unreachable") from err
    for info in infos:
        address = str(info[4][0])
        ip = ipaddress.ip_address(address)
        if ip.is_global:
            continue
        if _is_loopback(host) or _host_listed(address, allowed_hosts):
            continue
        raise CallbackNotAllowed(f"callback host {host!r} resolves to non-public {address}")
    if not infos:
        raise Fault(f"callback host {host!r} has no address", reason="callback_unreachable")
    return str(infos[0][4][0])


def pinned_request(url: str, address: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """`url` aimed at `address`: the URL to send to, and the Host header and httpx
    extensions that keep the name for the app (its virtual host, TLS SNI and the
    certificate check, which stays against the name)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip = ipaddress.ip_address(address)
    netloc = f"[{ip}]" if ip.version == 6 else str(ip)
    if parts.port is not None:
        netloc += f":{parts.port}"
    name = f"[{host}]" if ":" in host else host
    header = name if parts.port is None else f"{name}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), {"Host": header}, extensions


def event_body(event: AppEvent) -> bytes:
    return canonical_json(event)


def delivery_headers(event: AppEvent, body: bytes, secret: str, now: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_webhook(secret, body, now),
        EVENT_ID_HEADER: event.event_id,
        EVENT_TYPE_HEADER: event.type.value,
        IDEMPOTENCY_HEADER: event.event_id,
    }


def judge(response: httpx.Response) -> None:
    """Return on 2xx; otherwise raise what the status code says about retrying."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status >= 500 or status in RETRYABLE_4XX:
        raise Fault(f"app answered {status}", reason=f"callback_http_{status}")
    if 300 <= status < 400:
        # Following a redirect would let the app point us anywhere: never.
        raise BadInput(f"app answered a redirect ({status})", reason="callback_redirected")
    raise BadInput(f"app refused the event ({status})", reason="callback_refused")


async def post_event(
    client: httpx.AsyncClient,
    url: str,
    event: AppEvent,
    secret: str,
    now: int,
    address: str | None = None,
) -> int:
    """One attempt: POST the signed event (to `address`, the one `check_resolved` vetted,
    when given); the status code on 2xx, a reason-coded error else."""
    body = event_body(event)
    headers = delivery_headers(event, body, secret, now)
    extensions: dict[str, str] = {}
    if address is not None:
        url, host_header, extensions = pinned_request(url, address)
        headers.update(host_header)
    try:
        response = await client.post(
            url,
            content=body,
            headers=headers,
            follow_redirects=False,
            timeout=DELIVERY_TIMEOUT_S,
            extensions=extensions,
        )
    except httpx.TimeoutException as err:
        raise Fault(f"app did not answer: {err!r}", reason="callback_timeout") from err
    except httpx.HTTPError as err:
        raise Fault(f"cannot reach the app: {err!r}", reason="callback_unreachable") from err
    judge(response)
    return response.status_code

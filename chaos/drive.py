"""One chaos session, driven through the gateway as an onboarding app, a vendor and a
reviewer would drive it, and a record of what was done to it.

Calls that meet a fault of ours (the dev server is down, a worker just died) are retried
until a deadline, as a real app would retry; what the gateway *refuses* (4xx) is recorded,
never retried.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from PIL import Image

from signgate.client import GatewayClient, GatewayError
from signgate.models import (
    ArtifactKind,
    ArtifactRef,
    CaptureMetadata,
    CheckKind,
    OnboardingStatus,
    Stage,
)
from signgate.sample_media import mp4_bytes
from signgate.settings import Settings
from signgate.webhooks import SIGNATURE_HEADER, sign_webhook

T = TypeVar("T")

RETRY_DEADLINE_S = 90.0
# A review call refused after an earlier attempt failed on our side: that earlier attempt
# may have landed, so the refusal says nothing about the race.
AMBIGUOUS = -1
REVIEW_STAGES = {Stage.awaiting_review, Stage.escalated}
SETTLED_STAGES = {Stage.accepted, Stage.rejected, Stage.expired, *REVIEW_STAGES}
CAPTURE_KINDS = (ArtifactKind.selfie, ArtifactKind.id_front, ArtifactKind.liveness_video)

# Results a vendor played by the driver sends by webhook.
LOW_RISK = 0.03
FORGED_RISK = 0.0  # what forged and stale webhooks claim, and no genuine result does
DEEPFAKE_RISK = 0.97


@dataclass(frozen=True)
class Plan:
    """What happens to one session. `sandbox` is the sandbox scenario the capture names;
    `webhooks` is how the driver, playing the vendor, delivers results (None: the sandbox
    answers by itself); `review` is what a reviewer does if the session reaches review;
    `genuine_risk` is the deepfake risk the driver's genuine webhooks carry."""

    name: str
    sandbox: str
    webhooks: str | None = None
    review: str | None = None  # approve | reject | race (approve at a random moment)
    genuine_risk: float = LOW_RISK
    capture: bool = True
    step_up: bool = False
    may_accept: bool = True  # False: no path in this plan may end accepted


@dataclass
class WebhookSent:
    mode: str  # genuine | duplicate | forged | stale
    status: int
    reason: str | None
    duplicate: bool | None


@dataclass
class SessionRecord:
    plan: Plan
    session_id: str = ""
    webhooks: list[WebhookSent] = field(default_factory=list)
    review_status: int | None = None  # HTTP status of the reviewer's call, None if no call
    review_reason: str | None = None
    final: OnboardingStatus | None = None
    error: str | None = None
    faults: list[str] = field(default_factory=list)
    # Unsettled at the end, but only because an activity of a SIGKILLed worker is waiting
    # for its start-to-close timeout (then retried): `waiting_on` says which.
    recovering: bool = False
    waiting_on: str | None = None


@dataclass
class Retries:
    """What the app had to retry, by what it saw (`503 status_unavailable`, `ConnectError`),
    and the seconds those attempts and their back-off cost: where a run's time went."""

    count: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, seen: str, seconds: float) -> None:
        self.count[seen] += 1
        self.seconds[seen] = self.seconds.get(seen, 0.0) + seconds


async def retrying(
    call: Callable[[], Awaitable[T]],
    deadline_s: float = RETRY_DEADLINE_S,
    retries: Retries | None = None,
) -> T:
    """Retry a call through our own faults (connection refused, 5xx), never through a 4xx."""
    deadline = time.monotonic() + deadline_s
    delay = 0.2
    while True:
        started = time.monotonic()
        try:
            return await call()
        except GatewayError as err:
            if err.status_code < 500 or time.monotonic() > deadline:
                raise
            seen = f"{err.status_code} {err.reason}"
        except httpx.HTTPError as err:
            if time.monotonic() > deadline:
                raise
            seen = type(err).__name__
        await asyncio.sleep(delay)
        if retries is not None:
            retries.add(seen, time.monotonic() - started)
        delay = min(delay * 2, 3.0)


def noise_jpeg(seed: str) -> bytes:
    """A real, unique JPEG, so no two sessions share a capture (that would be a replay)."""
    image = Image.frombytes("RGB", (48, 48), os.urandom(48 * 48 * 3))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", comment=seed.encode())
    return buf.getvalue()


class Driver:
    def __init__(self, settings: Settings, rng: random.Random, review_window_s: float) -> None:
        self.settings = settings
        self.rng = rng
        self.review_window_s = review_window_s
        url = settings.gateway_url
        self.app = GatewayClient(url, settings.api_key_for("app"))
        self.reviewer = GatewayClient(url, settings.api_key_for("reviewer"))
        self.http = httpx.AsyncClient(base_url=url, timeout=30.0)
        self.retries = Retries()

    async def aclose(self) -> None:
        await self.app.aclose()
        await self.reviewer.aclose()
        await self.http.aclose()

    async def status(self, sid: str) -> OnboardingStatus:
        return await retrying(lambda: self.app.status(sid), retries=self.retries)

    async def wait_for(self, sid: str, stages: set[Stage], timeout_s: float) -> OnboardingStatus:
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.status(sid)
            if status.stage in stages or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.3)

    async def capture(self, sid: str, nonce: str, scenario: str) -> None:
        refs = [await self._upload(sid, kind, nonce) for kind in CAPTURE_KINDS]
        capture = CaptureMetadata(challenge_nonce=nonce, scenario=scenario)
        attempts = 0

        async def submit() -> None:
            nonlocal attempts
            attempts += 1
            await self.app.submit(sid, refs, capture)

        try:
            await retrying(submit, retries=self.retries)
        except GatewayError as err:
            # An earlier attempt that failed on our side may have landed: then the session
            # has moved on and refuses the retry. Only a first refusal is an error.
            if attempts == 1 or err.reason != "session_not_awaiting_capture":
                raise

    async def _upload(self, sid: str, kind: ArtifactKind, nonce: str) -> ArtifactRef:
        label = f"{sid}:{kind}:{nonce}"
        if kind is ArtifactKind.liveness_video:  # the gateway probes it as an MP4
            data, content_type = mp4_bytes(label), "video/mp4"
        else:
            data, content_type = noise_jpeg(label), "image/jpeg"
        return await retrying(
            lambda: self.app.upload(sid, kind, data, content_type), retries=self.retries
        )

    async def run(self, record: SessionRecord) -> None:
        plan = record.plan
        try:
            # One key and one body for every retry of this create, as an app must: a
            # retry after a lost answer then finds the session instead of starting another.
            subject, key = f"chaos-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
            created = await retrying(
                lambda: self.app.create_session(
                    subject_ref=subject, intent="sign:chaos", idempotency_key=key
                ),
                retries=self.retries,
            )
            sid = record.session_id = created["session_id"]
            if plan.capture:
                await self.capture(sid, created["challenge_nonce"], plan.sandbox)
            if plan.webhooks is not None:
                await self.play_vendor(record)
            if plan.step_up:
                status = await self.wait_for(sid, {Stage.awaiting_step_up, *SETTLED_STAGES}, 90)
                if status.stage is Stage.awaiting_step_up:
                    await self.capture(sid, status.challenge_nonce, "bona_fide")
            if plan.review is not None:
                await self.review(record)
        except Exception as err:  # recorded and reported: a driver failure is a finding
            record.error = f"{type(err).__name__}: {err}"

    # ------------------------------------------------------------------ the vendor

    async def play_vendor(self, record: SessionRecord) -> None:
        """Deliver the five results by webhook, with the plan's fault."""
        sid = record.session_id
        status = await self.status(sid)
        deadline = time.monotonic() + 90
        while len([p for p in status.pending if ":" in p]) < len(CheckKind):
            if status.stage in SETTLED_STAGES or time.monotonic() > deadline:
                record.error = f"checks never all pending (stage {status.stage.value})"
                return
            await asyncio.sleep(0.3)
            status = await self.status(sid)
        pending = [p.split(":", 1) for p in status.pending if ":" in p]
        mode = record.plan.webhooks
        if mode == "never":
            record.faults.append("webhook_never_sent")
            return
        if mode in ("forged", "stale"):
            for kind, ref in pending:
                body = self._webhook_body(sid, status.round, kind, ref, risk=FORGED_RISK)
                if mode == "forged":
                    header = sign_webhook("not-our-secret", body, int(time.time()))
                else:
                    header = sign_webhook(
                        self.settings.webhook_secrets[0], body, int(time.time()) - 3600
                    )
                record.webhooks.append(await self._post(body, header, mode))
                record.faults.append(f"webhook_{mode}")
        order = list(pending)
        if mode == "reordered":
            self.rng.shuffle(order)
            record.faults.append("webhook_reordered")
        bodies = [
            self._webhook_body(sid, status.round, kind, ref, risk=self._risk(record.plan, kind))
            for kind, ref in order
        ]
        for body in bodies:
            header = sign_webhook(self.settings.webhook_secrets[0], body, int(time.time()))
            record.webhooks.append(await self._post(body, header, "genuine"))
            if mode in ("duplicated", "reordered"):
                await asyncio.sleep(self.rng.uniform(0, 0.3))
                header = sign_webhook(self.settings.webhook_secrets[0], body, int(time.time()))
                record.webhooks.append(await self._post(body, header, "duplicate"))
                record.faults.append("webhook_duplicated")

    def _risk(self, plan: Plan, kind: str) -> float:
        return plan.genuine_risk if kind == CheckKind.deepfake.value else LOW_RISK

    def _webhook_body(self, sid: str, round_: int, kind: str, ref: str, risk: float) -> bytes:
        return json.dumps(
            {
                "event_id": f"evt-{uuid.uuid4().hex}",
                "vendor_ref": ref,
                "reference": f"{sid}:{round_}:{kind}",
                "check": kind,
                "completed_at": int(time.time()),
                "result": {
                    "check": kind,
                    "risk_score": risk,
                    "confidence": 0.97,
                    "attack_hints": ["synthetic"] if risk > 0.9 else [],
                    "model_version": "chaos-vendor-1",
                    "explanations": [],
                },
            }
        ).encode()

    async def _post(self, body: bytes, header: str, mode: str) -> WebhookSent:
        headers = {SIGNATURE_HEADER: header, "Content-Type": "application/json"}

        async def send() -> httpx.Response:
            response = await self.http.post("/v1/webhooks/vendor", content=body, headers=headers)
            if response.status_code >= 500:
                raise GatewayError(response.status_code, "server_error", response.text[:200])
            return response

        try:
            response = await retrying(send, retries=self.retries)
        except GatewayError as err:
            return WebhookSent(mode, err.status_code, err.reason, None)
        payload = response.json()
        if response.status_code >= 400:
            return WebhookSent(mode, response.status_code, payload["error"]["reason"], None)
        return WebhookSent(mode, response.status_code, None, bool(payload["duplicate"]))

    # ------------------------------------------------------------------ the reviewer

    async def review(self, record: SessionRecord) -> None:
        """Decide once the session is in review; `race` decides at a random moment of the
        review window, so some decisions land after the final timeout has rejected it."""
        sid = record.session_id
        status = await self.wait_for(sid, SETTLED_STAGES, 120)
        if status.stage not in REVIEW_STAGES:
            return
        approve = record.plan.review != "reject"
        if record.plan.review == "race":
            record.faults.append("review_racing_timeout")
            await asyncio.sleep(self.rng.uniform(0, self.review_window_s))
        attempts = 0

        async def call() -> object:
            nonlocal attempts
            attempts += 1
            return await self.reviewer.review(sid, approve, "chaos reviewer decided")

        try:
            await retrying(call, retries=self.retries)
            record.review_status = 200
        except GatewayError as err:
            record.review_status = err.status_code if attempts == 1 else AMBIGUOUS
            record.review_reason = err.reason

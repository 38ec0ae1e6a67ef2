"""What every route stands on: one `Gateway` per app, at `app.state.gateway`."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from fastapi import Request

from gateway.onboarding import Sessions, TemporalAccess
from signgate.api_keys import KeyStore, key_store_path
from signgate.evidence import EvidenceStore
from signgate.evidence_stores import open_evidence_store
from signgate.settings import Settings
from signgate.webhooks import WebhookEventLog


@dataclass
class Gateway:
    settings: Settings
    temporal: TemporalAccess
    sessions: Sessions
    store: EvidenceStore
    events: WebhookEventLog
    keys: KeyStore

    @classmethod
    def from_settings(cls, settings: Settings, temporal: TemporalAccess) -> Gateway:
        return cls(
            settings=settings,
            temporal=temporal,
            sessions=Sessions(temporal, settings),
            store=open_evidence_store(settings),
            events=WebhookEventLog(settings.gateway_db),
            keys=KeyStore(key_store_path(settings.var_dir)),
        )


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def bind_session(session_id: str) -> None:
    """Every log line of this request names its session (ids only, never PII)."""
    structlog.contextvars.bind_contextvars(session_id=session_id)

"""One settings object for every process (env prefix `SIGNGATE_`, JSON for nested values)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from signgate.errors import BadInput
from signgate.models import ArtifactKind, ReviewerRole, SessionTimeouts

Role = Literal["app", "reviewer", "senior_reviewer", "ops"]


class ApiKey(BaseModel):
    role: Role
    principal: str  # app id or reviewer id the key acts as
    tenant_id: str = "demo"


DEV_API_KEYS: dict[str, ApiKey] = {
    "dev-app-key": ApiKey(role="app", principal="demo-app"),
    "dev-reviewer-key": ApiKey(role="reviewer", principal="rev-alice"),
    "dev-senior-key": ApiKey(role="senior_reviewer", principal="rev-bob"),
    "dev-ops-key": ApiKey(role="ops", principal="ops-carol"),
}

MiB = 1024 * 1024


class WebhookVendor(BaseModel):
    """How one vendor signs its webhooks (see signgate/webhook_verifiers.py)."""

    scheme: Literal["signgate", "persona", "onfido"] = "signgate"
    # Empty: `webhook_secrets`. The first signs, every one verifies (rotation).
    secrets: list[str] = Field(default_factory=list)
    provider: str = "sandbox"  # the provider name its check results carry
    # For a scheme that signs no time (onfido): how old the body's event time may be.
    max_event_age_s: int = 24 * 3600


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNGATE_", env_nested_delimiter="__")

    var_dir: Path = Path("var")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    task_queue: str = "signgate-onboarding"

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    sandbox_port: int = 8090
    # Where the vendor adapter sends checks; defaults to the bundled sandbox.
    vendor_url: str | None = None
    # Who answers the checks: the HTTP vendor adapter (the bundled sandbox by default) or
    # the built-in `local` detectors.
    check_provider: Literal["vendor", "local"] = "vendor"
    vendor_api_key: str = "sandbox-key"
    vendor_timeout_s: float = 10.0
    # Webhook HMAC secrets: the first signs, every one verifies (rotation).
    webhook_secrets: list[str] = Field(default_factory=lambda: ["dev-webhook-secret"])
    webhook_tolerance_s: int = 300
    # Inbound webhooks per vendor (`POST /v1/webhooks/<name>`): scheme and secrets.
    webhook_vendors: dict[str, WebhookVendor] = Field(
        default_factory=lambda: {"vendor": WebhookVendor()}
    )
    # Hosts the app's callback_url may name (`*.example.com` for subdomains); loopback
    # only if listed literally. Empty: no callbacks at all (see signgate/outbound.py).
    callback_allowed_hosts: list[str] = Field(default_factory=list)

    api_keys: dict[str, ApiKey] = Field(default_factory=lambda: dict(DEV_API_KEYS))
    max_upload_bytes: dict[ArtifactKind, int] = Field(
        default_factory=lambda: {
            ArtifactKind.selfie: 15 * MiB,
            ArtifactKind.id_front: 15 * MiB,
            ArtifactKind.id_back: 15 * MiB,
            ArtifactKind.liveness_video: 200 * MiB,
            ArtifactKind.device_signals: 1 * MiB,
        }
    )
    timeouts: SessionTimeouts = Field(default_factory=SessionTimeouts)
    attestation_ttl_s: int = 15 * 60
    # OTLP/HTTP collector base URL; unset = spans are made but exported nowhere.
    otlp_endpoint: str | None = None
    log_json: bool = False
    log_level: str = "INFO"

    @property
    def evidence_dir(self) -> Path:
        return self.var_dir / "evidence"

    @property
    def ledger_path(self) -> Path:
        return self.var_dir / "ledger.sqlite3"

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def temporal_db(self) -> Path:
        return self.var_dir / "temporal.db"

    @property
    def gateway_db(self) -> Path:
        """Gateway-side state: webhook event ids seen (dedupe), vendor_ref -> session."""
        return self.var_dir / "gateway.sqlite3"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def resolved_vendor_url(self) -> str:
        return self.vendor_url or f"http://127.0.0.1:{self.sandbox_port}"

    def api_key_for(self, role: Role) -> str:
        """The first configured key holding `role` (for the CLI and the demo)."""
        for key, holder in self.api_keys.items():
            if holder.role == role:
                return key
        raise BadInput(f"no API key with role {role!r} is configured", reason="api_key_missing")

    def reviewer_roster(self) -> dict[str, ReviewerRole]:
        """Reviewers known at session start, from the API keys with a reviewer role."""
        return {
            k.principal: ReviewerRole(k.role)
            for k in self.api_keys.values()
            if k.role in ("reviewer", "senior_reviewer")
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()

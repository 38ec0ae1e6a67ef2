"""One settings object for every process (env prefix `SIGNGATE_`, JSON for nested values)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from signgate.models import ArtifactKind, ReviewerRole, SessionTimeouts

Role = Literal["app", "reviewer", "senior_reviewer", "ops", "admin"]


class ApiKey(BaseModel):
    role: Role
    principal: str  # app id or reviewer id the key acts as
    tenant_id: str = "demo"


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
    # The policy's cheap-first order saves local compute: with `local` detectors the heavy
    # ones are skipped when the cheap ones already reject. With a vendor every check is a
    # round trip, and waiting for the "cheap" ones first only adds their latency, so all
    # run at once unless this is set (to save vendor calls on conclusive rejects instead).
    cheap_first_with_vendor: bool = False
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

    # API keys live hashed in the key store (signgate/api_keys.py), never in settings.
    # Per-key token bucket: sustained requests per second, and the burst on top.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    # Cap on every request body except evidence uploads (which have max_upload_bytes).
    max_request_body_bytes: int = 256 * 1024
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
    # Temporal payload encryption keys (base64 AES-256), newest first: the first encrypts,
    # every one decrypts. Empty = key files under var/keys/payload (signgate.payload_codec).
    payload_keys: list[SecretStr] = Field(default_factory=list)
    # Signs the reviewer console's login cookies and media links; unset = random per process.
    console_secret: str | None = None
    # OTLP/HTTP collector base URL; unset = spans are made but exported nowhere.
    otlp_endpoint: str | None = None
    log_json: bool = False
    log_level: str = "INFO"
    # Audit ledger backend (signgate.ledger.open_ledger); the perceptual replay index lives
    # beside it (signgate.detectors.replay.open_perceptual_index). `ledger_schema` isolates
    # one ledger per schema.
    ledger: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/test"
    ledger_schema: str = Field(default="signgate", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # A signed checkpoint (tree head) after every this many entries; 0 = only on demand.
    checkpoint_every: int = Field(default=64, ge=0)
    # ... and on the first append once the latest checkpoint is this many seconds old; 0 = off.
    checkpoint_interval_s: float = Field(default=300, ge=0)
    # Evidence backend: files under var/evidence, or an S3 bucket under Object Lock.
    evidence: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = None  # unset = AWS; set for MinIO, moto, ...
    s3_bucket: str = "signgate-evidence"
    s3_region: str = "us-east-1"
    # COMPLIANCE-mode default retention of the bucket, and the retention sweep's window.
    evidence_retention_days: int = Field(default=30, ge=1)
    evidence_retention_days_by_tenant: dict[str, int] = Field(default_factory=dict)

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
        """The embedded stack's dev key holding `role` (for the CLI, the demo and tests).

        Read from the 0600 file `signgate dev` writes at first start; settings hold no keys.
        """
        from signgate.api_keys import dev_key_for

        return dev_key_for(self.var_dir, role)

    def reviewer_roster(self) -> dict[str, ReviewerRole]:
        """The embedded stack's reviewers, for tools and tests that start sessions without
        the gateway (the gateway takes its roster from the key store)."""
        from signgate.api_keys import DEV_IDENTITIES

        return {
            k.principal: ReviewerRole(k.role)
            for k in DEV_IDENTITIES.values()
            if k.role in ("reviewer", "senior_reviewer")
        }


@lru_cache
def get_settings() -> Settings:
    return Settings()

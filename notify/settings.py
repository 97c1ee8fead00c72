"""Typed settings from ``NOTIFY_*`` environment variables, validated once at start-up."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from notify.errors import ConfigError
from notify.logs import LogFormat
from notify.proxy import Proxy
from notify.redisurl import check_broker_url, is_cluster, parse_redis_url
from notify.smtpurl import parse_sender, parse_smtp_url
from notify.ssrf import AllowList

DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore", frozen=True)

    redis_url: str = "redis://localhost:6379/0"
    # defaults of the command line's options (`notify serve`, `notify worker`)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    worker_concurrency: int = Field(2, ge=1, le=256)
    access_log: bool = False
    # every Redis command's deadline (blocking reads: their block time plus this)
    redis_timeout_seconds: float = Field(3.0, gt=0, le=60)
    # a publish is acknowledged once this many replicas have it (Redis WAIT)
    publish_min_replicas: int = Field(0, ge=0, le=16)
    # shards of the event log (notify.shards): one per Cluster primary, or a multiple
    shards: int = Field(1, ge=1, le=64)
    broker_url: str | None = None  # None: Celery's broker is NOTIFY_REDIS_URL
    celery_task_events: bool = False  # Celery task events for Flower and `celery events`
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None

    max_event_bytes: int = Field(65536, ge=256, le=16 * 1024 * 1024)
    max_batch_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    history_seconds: int = Field(86400, ge=1)
    history_max_events: int = Field(1_000_000, ge=100)
    channel_history_max_events: int = Field(100_000, ge=10)
    max_queued: int = Field(1000, ge=1)
    keepalive_seconds: float = Field(15.0, gt=0)
    send_timeout_seconds: float = Field(10.0, gt=0)
    request_timeout_seconds: float = Field(10.0, gt=0)
    max_header_bytes: int = Field(32 * 1024, ge=4096, le=1024 * 1024)
    resume_scan_budget: int = Field(20_000, ge=1000)
    max_headers: int = Field(100, ge=16, le=10_000)
    publish_rate: float | None = Field(None, gt=0)
    max_streams_per_subject: int | None = Field(None, ge=1)
    # an open stream's place under that limit is a lease its gateway renews every third
    # of it (stream_renewal_seconds); a crashed gateway's streams lapse within it
    stream_lease_seconds: float = Field(60.0, ge=3)
    auth_failures_per_minute: int = Field(60, ge=1)
    api_concurrency_per_client: int = Field(8, ge=1)
    cors_origins: str = ""
    # every loopback origin (localhost, 127.0.0.0/8, [::1]; any port) as if listed above:
    # a dev server's page on another port (`notify dev` turns it on)
    cors_allow_loopback: bool = False
    log_format: LogFormat = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    smtp_url: SecretStr = SecretStr("smtp://localhost:25")  # may carry a password
    email_from: str = "notify@localhost"
    public_url: str = "http://127.0.0.1:8000"
    problem_base_url: str | None = None  # None: NOTIFY_PUBLIC_URL + "/problems/"
    allow_private_targets: bool = False
    # host names and CIDRs allowed despite the SSRF guard (e.g. an in-network Alertmanager)
    allowed_private_targets: str = ""
    # NoDecode: the variable is a comma-separated list, not JSON
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    webhook_timeout_seconds: float = Field(15.0, gt=0)
    webhook_target_rate: float = Field(100.0, ge=0)
    webhook_max_connections: int = Field(100, ge=1, le=10_000)
    webhook_proxy: str | None = None  # http://[user:pass@]host:port, tunnels with CONNECT
    delivery_batch_size: int = Field(50, ge=1, le=1000)
    delivery_lease_seconds: float = Field(60.0, gt=0)
    worker_stall_seconds: float = Field(120.0, gt=0)
    delivery_retention_seconds: int = Field(7 * 86400, ge=60)
    sweep_interval_seconds: float = Field(0.25, gt=0, le=60)
    dispatch_claim_idle_seconds: float = Field(30.0, gt=0)
    broker_visibility_seconds: int = Field(3600, ge=10)
    heartbeat_seconds: float = Field(3.0, ge=0.5, le=60)
    health_port: int | None = Field(None, ge=0, le=65535)  # None: no health server
    health_host: str = "127.0.0.1"
    max_subscriptions_per_user: int = Field(1000, ge=1)

    # email and monitoring sinks
    smtp_timeout_seconds: float | None = Field(None, gt=0)  # None: the webhook timeout
    smtp_max_connections: int = Field(4, ge=1, le=100)
    email_templates: Path | None = None
    unsubscribe_secret: SecretStr | None = None  # None: derived from NOTIFY_JWT_SECRET
    digest_max_events: int = Field(1000, ge=1, le=100_000)
    alert_resend_seconds: float = Field(60.0, gt=0)
    alert_max_age_seconds: float = Field(86400.0, gt=0)

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _parse_schedule(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            try:
                return tuple(float(p) for p in parts)
            except ValueError as exc:
                raise ValueError("a comma-separated list of seconds, e.g. 5,300,1800") from exc
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _check_schedule(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(v < 0 for v in value):
            raise ValueError("delays must not be negative")
        return value

    @model_validator(mode="after")
    def _check_lease(self) -> Settings:
        # a claimed delivery must outlive its HTTP request, or a second worker would
        # take it over while the first is still sending
        if self.delivery_lease_seconds < self.webhook_timeout_seconds + 1:
            raise ValueError(
                "NOTIFY_DELIVERY_LEASE_SECONDS must exceed NOTIFY_WEBHOOK_TIMEOUT_SECONDS by 1 s"
            )
        if self.delivery_lease_seconds < self.smtp_timeout + 1:
            raise ValueError(
                "NOTIFY_DELIVERY_LEASE_SECONDS must exceed NOTIFY_SMTP_TIMEOUT_SECONDS by 1 s"
            )
        # a worker busy with batches as long as a lease starts nothing meanwhile
        if self.worker_stall_seconds <= self.delivery_lease_seconds:
            raise ValueError(
                "NOTIFY_WORKER_STALL_SECONDS must exceed NOTIFY_DELIVERY_LEASE_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _check_cluster_broker(self) -> Settings:
        # Celery's broker is NOTIFY_REDIS_URL when NOTIFY_BROKER_URL is unset, and kombu
        # has no Redis Cluster transport (a set one is amqp already: _check_broker_url)
        if is_cluster(self.redis_url) and not self.broker_url:
            raise ValueError(
                "NOTIFY_BROKER_URL must be an amqp:// (amqps://, pyamqp://) URL when"
                " NOTIFY_REDIS_URL is a Redis Cluster: Celery has no Redis Cluster broker"
            )
        return self

    @property
    def stream_renewal_seconds(self) -> float:
        """How often a gateway renews its open streams' leases: a third of a lease, so
        one late or failed renewal still leaves the next before the lease runs out."""
        return self.stream_lease_seconds / 3

    @property
    def smtp_timeout(self) -> float:
        """One SMTP attempt's deadline: waiting for a connection, connecting, sending."""
        if self.smtp_timeout_seconds is None:
            return self.webhook_timeout_seconds
        return self.smtp_timeout_seconds

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr) -> SecretStr:
        parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("email_from")
    @classmethod
    def _check_email_from(cls, value: str) -> str:
        parse_sender(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @field_validator("unsubscribe_secret")
    @classmethod
    def _check_unsubscribe_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HS256 needs a 256-bit key)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("webhook_proxy")
    @classmethod
    def _check_webhook_proxy(cls, value: str | None) -> str | None:
        if value:
            Proxy.parse(value)
        return value or None

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parse_redis_url(value)
        return value

    @field_validator("problem_base_url")
    @classmethod
    def _check_problem_base(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s?#]+", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value

    @property
    def problem_base(self) -> str:
        """What a problem ``type`` starts with (the code follows)."""
        base = self.problem_base_url or self.public_url + "/problems/"
        return base if base.endswith("/") else base + "/"

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str | None) -> str | None:
        return None if not value else check_broker_url(value)

    @field_validator("allowed_private_targets")
    @classmethod
    def _check_allowed_targets(cls, value: str) -> str:
        AllowList.parse(value)
        return value

    @property
    def private_targets(self) -> AllowList:
        return AllowList.parse(self.allowed_private_targets)

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def require_secret(self) -> None:
        if self.jwt_secret is None and self.jwt_public_key is None:
            raise ConfigError(
                "NOTIFY_JWT_SECRET",
                "is required (or NOTIFY_JWT_PUBLIC_KEY); `notify dev` generates one for you",
            )


SECRET_FIELDS = ("jwt_secret", "jwt_public_key", "smtp_url", "unsubscribe_secret", "redis_url")
"""Settings that may be read from a file named by ``NOTIFY_<NAME>_FILE`` (as container
secrets are mounted), and that ``notify check`` masks."""
PREFIX = "NOTIFY_"


def variable(field: str) -> str:
    return PREFIX + field.upper()


def known_variables() -> frozenset[str]:
    names = {variable(f) for f in Settings.model_fields}
    return frozenset(names | {variable(f) + "_FILE" for f in SECRET_FIELDS})


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Each ``NOTIFY_*`` variable no setting reads, with the likely intended one."""
    known = known_variables()
    return [
        (name, next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.75)), None))
        for name in sorted(environ)
        if name.startswith(PREFIX) and name not in known
    ]


def from_files(environ: Mapping[str, str]) -> dict[str, str]:
    """Secrets read from the files ``NOTIFY_*_FILE`` name (a final newline dropped)."""
    values: dict[str, str] = {}
    for field in SECRET_FIELDS:
        path = environ.get(variable(field) + "_FILE")
        if path is None:
            continue
        if variable(field) in environ:
            raise ConfigError(
                variable(field) + "_FILE", f"is set together with {variable(field)}; use one"
            )
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(variable(field) + "_FILE", f"cannot read {path!r}: {exc}") from exc
        values[field] = text[:-1] if text.endswith("\n") else text
    return values


def load(**overrides: Any) -> Settings:
    """Read the environment; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**{**from_files(os.environ), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["loc"]:
            name = "NOTIFY_" + str(first["loc"][0]).upper()
        else:  # a cross-field check names its variable first in its message
            named = re.search(r"NOTIFY_[A-Z_]+", first["msg"])
            name = named.group(0) if named else "NOTIFY_*"
        raise ConfigError(name, first["msg"]) from exc

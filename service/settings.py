"""Every ``TEXTBATCH_*`` setting, read and validated in one place.

Build with ``load_settings()``; components take a ``Settings`` as an argument, so
tests construct their own instead of mutating a global.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.llm.profiles import UpstreamProfile, choose_profile, profile_named


def default_data_dir() -> Path:
    """Where the service keeps its data unless ``TEXTBATCH_DATA_DIR`` says otherwise."""
    # The XDG base directory rule: $XDG_DATA_HOME when set (and absolute), else ~/.local/share.
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "textbatch"


class UpstreamConfig(BaseModel):
    """A named upstream for ``provider/model`` pass-through lines."""

    base_url: str
    api_key: SecretStr | None = None
    # A built-in profile name (``openai``, ``vllm``, ``ollama``…); unset: inferred from
    # the base URL and model name.
    profile: str | None = None
    # The model's context window in tokens; unset: the profile's default.
    context_tokens: int | None = Field(default=None, ge=256)
    # The model task lines call here when a request picks this upstream with the
    # ``x-textbatch-provider`` header; unset: TEXTBATCH_LLM_MODEL.
    model: str | None = None
    # Whether callers may send their own key for it (``x-textbatch-provider-key``).
    byok: bool = False
    # The lane a batch takes to this upstream unless it asks for one: ``direct`` calls, or
    # ``native`` (the upstream's own batch API, at its batch price).
    batch: Literal["direct", "native"] = "direct"
    # Which native batch API the upstream speaks.
    api: Literal["openai", "anthropic"] = "openai"
    # ``direct``: lines of an upstream batch that expired or failed are run directly.
    fallback: Literal["direct"] | None = None
    # The most lines and bytes of one upstream batch; larger groups are split.
    batch_max_lines: int = Field(default=50_000, ge=1)
    batch_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str | None) -> str | None:
        return _known_profile_name(value)


class Settings(BaseSettings):
    """The service configuration; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="TEXTBATCH_", extra="ignore")

    # Access
    api_keys: SecretStr | None = Field(
        default=None, description="Comma-separated API keys; unset: one is generated."
    )
    data_dir: Path = Field(default_factory=default_data_dir)

    # Redis and queue
    redis_url: str | None = Field(default=None, description="Unset: start embedded Valkey.")
    # The embedded Valkey's loopback port; unset: a free port chosen on first start and kept
    # in the data directory, so the URL given to workers stays right after a restart.
    embedded_redis_port: int | None = Field(default=None, ge=1, le=65535)
    queue_name: str = "textbatch-lines"
    chunk_size: int = Field(default=32, ge=1, le=1000)
    worker_threads: int = Field(default=8, ge=1, le=256)
    heartbeat_timeout_ms: int = Field(default=10_000, ge=1_000)
    # Out of a million broker commands; Dramatiq's default (1,000) can leave a dead
    # worker's messages unrecovered for many minutes.
    maintenance_chance: int = Field(default=100_000, ge=1, le=1_000_000)

    # How long an acknowledged write may wait for Redis to fsync it (WAITAOF) before the
    # request is answered 503 instead of 200.
    durable_write_timeout_ms: int = Field(default=5_000, ge=1, le=60_000)

    # Safety nets run by the workers' sweeper (seconds).
    sweep_interval: float = Field(default=5.0, gt=0)
    dispatch_grace: int = Field(default=30, ge=1)
    stall_timeout: int = Field(default=300, ge=5)

    # LLM
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_concurrency: int = Field(default=32, ge=1, le=4096)
    # Calls in flight to each upstream across every process; realtime calls are served
    # first when it is full. 0 turns the shared limit (and so the priority) off.
    upstream_capacity: int = Field(default=128, ge=0, le=100_000)
    # Total deadline of one upstream call: connect, headers and the whole body.
    llm_timeout: float = Field(default=60.0, gt=0)
    llm_connect_timeout: float = Field(default=10.0, gt=0)
    # The largest answer read from an upstream; a larger one fails the line.
    llm_max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Output tokens a task call may ask for; a profile may cap it lower.
    llm_max_output_tokens: int = Field(default=16_384, ge=16, le=1_000_000)
    # Built-in upstream profile of the default upstream; unset: inferred.
    llm_profile: str | None = None
    # The default upstream model's context window in tokens; unset: the profile's default.
    # Task lines whose prompt, text and output budget do not fit are split.
    llm_context_tokens: int | None = Field(default=None, ge=256)
    llm_max_attempts: int = Field(default=4, ge=1, le=20)
    llm_backoff_base: float = Field(default=0.5, ge=0)
    llm_backoff_max: float = Field(default=20.0, ge=0)
    # Halve the calls in flight to an upstream that answers 429, grow back as calls succeed.
    llm_adaptive_concurrency: bool = True
    # Whether callers may send their own key for the default upstream (x-textbatch-provider-key).
    llm_byok: bool = False
    # A Fernet key that encrypts callers' provider keys while their batches run; required
    # when any upstream allows BYOK.
    secret_key: SecretStr | None = None
    # The default upstream's lane, native batch API, fallback and batch limits, as in
    # an entry of TEXTBATCH_UPSTREAMS.
    llm_batch: Literal["direct", "native"] = "direct"
    llm_api: Literal["openai", "anthropic"] = "openai"
    llm_batch_fallback: Literal["direct"] | None = None
    llm_batch_max_lines: int = Field(default=50_000, ge=1)
    llm_batch_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    # The longest pause between two looks at a running upstream batch (seconds).
    native_poll_max: float = Field(default=30.0, gt=0)

    # Named upstreams, as JSON: {"anthropic": {"base_url": "...", "api_key": "..."}}
    upstreams: dict[str, UpstreamConfig] = Field(default_factory=dict)

    # Usage and cost
    price_table: Path | None = Field(
        default=None, description="JSON file: model -> USD per million input/output tokens."
    )
    batch_discount: float = Field(default=0.5, ge=0, le=1)

    # Batch lifecycle
    completion_window: str = Field(default="24h", pattern=r"^[1-9][0-9]*[smh]$")
    # How long a batch and its data are kept once it ends, and an upload once stored:
    # seconds, or a number with s, m, h or d. A batch's output_expires_after overrides it.
    retention: str = Field(default="30d", pattern=r"^[1-9][0-9]{0,9}[smhd]?$")
    # Results, line pages or keys the reaper (and a delete) removes per Redis command.
    reap_step: int = Field(default=1000, ge=1, le=100_000)

    # Where uploaded files' bytes live: "redis", or "s3://bucket/prefix" (credentials from
    # the standard AWS settings); the endpoint for an S3-compatible server other than AWS.
    file_store: str = Field(
        default="redis", pattern=r"^(redis|s3://[a-z0-9][a-z0-9.\-]{1,62}(/.*)?)$"
    )
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    # Input limits
    max_body_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    max_lines: int = Field(default=50_000, ge=1)
    max_line_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_text_chars: int = Field(default=1_000_000, ge=1)

    # Prompt templates: characters of compiled templates kept per API key and in all, and
    # characters of templates not kept that one request may compile.
    template_cache_chars_per_key: int = Field(default=2_000_000, ge=0)
    template_cache_chars: int = Field(default=16_000_000, ge=0)
    max_template_chars_per_request: int = Field(default=1_000_000, ge=1)

    # Nesting of a JSON line or body (objects and arrays); orjson writes at most 254 levels,
    # so the limit stays well under that with room for the envelopes a line is stored in.
    max_json_depth: int = Field(default=64, ge=4, le=200)

    # Webhooks: who may be called (private addresses only when allowed), how many a key
    # may have, and how deliveries are bounded and retried (seconds).
    webhook_allow_private: bool = False
    max_webhooks_per_key: int = Field(default=10, ge=1, le=1000)
    webhook_timeout: float = Field(default=10.0, gt=0, le=300)
    webhook_retry_base: float = Field(default=5.0, gt=0)
    webhook_retry_max: float = Field(default=3600.0, gt=0)
    webhook_retry_window: int = Field(default=86_400, ge=1)
    webhook_poll_interval: float = Field(default=1.0, gt=0)

    # HTTP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"
    # The request line and headers of one request, in all (431 above).
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Seconds a request's headers may take, from the connection's start or the last answer.
    header_timeout: float = Field(default=10.0, gt=0)
    # Seconds a request body may go without a byte, and may take in all.
    body_idle_timeout: float = Field(default=30.0, gt=0)
    body_timeout: float = Field(default=300.0, gt=0)

    # Metrics: GET /metrics in Prometheus' format, without a key; false turns it off.
    metrics: bool = True
    # Serve /metrics on this port (same host) instead of the API's port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("llm_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return value.strip().rstrip("/")

    @field_validator("llm_profile")
    @classmethod
    def _known_llm_profile(cls, value: str | None) -> str | None:
        return _known_profile_name(value)

    @field_validator("redis_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    def default_profile(self) -> UpstreamProfile | None:
        """The profile of the default upstream, or ``None`` for the offline engine."""
        if self.llm_base_url is None:
            return None
        return choose_profile(self.llm_profile, self.llm_base_url, self.llm_model)

    def upstream_config(self, name: str) -> UpstreamConfig | None:
        """The entry of upstream ``name``; ``default`` is TEXTBATCH_LLM_*, None if unset."""
        if name != "default":
            return self.upstreams.get(name)
        if self.llm_base_url is None:
            return None
        return UpstreamConfig(
            base_url=self.llm_base_url,
            api_key=self.llm_api_key,
            profile=self.llm_profile,
            context_tokens=self.llm_context_tokens,
            batch=self.llm_batch,
            api=self.llm_api,
            fallback=self.llm_batch_fallback,
            batch_max_lines=self.llm_batch_max_lines,
            batch_max_bytes=self.llm_batch_max_bytes,
        )

    def default_lane(self) -> str:
        """A batch's lane when it asks for none: native if any upstream's default is."""
        natives = [u.batch for u in self.upstreams.values()] + [self.llm_batch]
        return "native" if "native" in natives else "direct"

    def task_output_cap(self) -> int:
        """The most output tokens a task line may ask for: the setting, lowered by the
        default upstream's profile."""
        profile = self.default_profile()
        if profile is None:
            return self.llm_max_output_tokens
        return min(self.llm_max_output_tokens, profile.output_token_cap)

    def byok_upstreams(self) -> list[str]:
        """Names of the upstreams that take a caller's own key (``default`` for the default)."""
        named = [name for name, upstream in self.upstreams.items() if upstream.byok]
        return (["default"] if self.llm_byok and self.llm_base_url else []) + named

    def retention_seconds(self) -> int:
        """``retention`` in seconds."""
        unit = self.retention[-1]
        if unit.isdigit():
            return int(self.retention)
        return int(self.retention[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]

    def configured_api_keys(self) -> list[str]:
        """The keys given in ``TEXTBATCH_API_KEYS``, without blanks."""
        if self.api_keys is None:
            return []
        return [key.strip() for key in self.api_keys.get_secret_value().split(",") if key.strip()]


def _known_profile_name(value: str | None) -> str | None:
    # Checked here, not at the first call: a worker builds its backend with its first chunk.
    if value is None or not value.strip():
        return None
    return profile_named(value).name


def load_settings(**overrides: object) -> Settings:
    """Read the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]

"""Chooses the LLM backend the settings describe."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from service.llm.base import ChatBackend
from service.llm.limiter import AdaptiveLimiter
from service.llm.offline import OFFLINE_MODEL, OfflineEngine
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.profiles import choose_profile
from service.llm.retry import RetryPolicy
from service.llm.shared_capacity import Priority, SharedCapacity
from service.settings import Settings

DEFAULT_UPSTREAM = "default"


@dataclass(frozen=True, slots=True)
class CapacityShare:
    """Where the shared upstream capacity lives, and whom this process calls for."""

    redis_url: str
    priority: Priority


def build_backend(settings: Settings, share: CapacityShare | None = None) -> ChatBackend:
    """The OpenAI-compatible client when a base URL is set, else the offline engine."""
    return build_default_backend(settings, share) or OfflineEngine()


def build_default_backend(
    settings: Settings, share: CapacityShare | None = None
) -> OpenAICompatibleBackend | None:
    """The HTTP client of ``TEXTBATCH_LLM_BASE_URL``, or ``None`` when none is set."""
    if settings.llm_base_url is None:
        return None
    return build_openai_backend(
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        settings,
        upstream=DEFAULT_UPSTREAM,
        share=share,
        profile=settings.llm_profile,
        context_tokens=settings.llm_context_tokens,
    )


def build_openai_backend(
    base_url: str,
    api_key: str | None,
    settings: Settings,
    *,
    upstream: str = DEFAULT_UPSTREAM,
    share: CapacityShare | None = None,
    profile: str | None = None,
    context_tokens: int | None = None,
    model: str | None = None,
) -> OpenAICompatibleBackend:
    """An HTTP client for one upstream, with the settings' model, timeout, retries and pool.

    ``model`` is what task lines call on it; unset, ``TEXTBATCH_LLM_MODEL``.
    ``profile`` names the upstream's built-in profile; unset, it is inferred from the
    base URL and the model (``service.llm.profiles.infer_profile``); an unknown name
    is a ``ValueError`` at start-up. Each backend gets its own limiter of
    ``llm_concurrency`` calls in flight, adaptive unless turned off: one upstream's
    overload must not slow the calls to another (and the router reuses the task
    backend for the default upstream, so one upstream has one limit).
    With a ``share``, its calls also take a slot of the upstream's capacity shared by
    every process, realtime calls first.
    """
    # Always a bound on calls in flight: workers hold more lines than call slots. Without
    # adaptation it is a fixed one (the limit cannot fall below its maximum).
    concurrency = settings.llm_concurrency
    floor = 1 if settings.llm_adaptive_concurrency else concurrency
    limiter = AdaptiveLimiter(concurrency, floor, name=_host_of(base_url))
    shared = None
    if share is not None and settings.upstream_capacity > 0:
        # Keyed by name and address: two deployments sharing a Redis share a limit only
        # when they call the same upstream.
        address = hashlib.blake2b(base_url.encode(), digest_size=6).hexdigest()
        shared = SharedCapacity(
            share.redis_url,
            f"{upstream}-{address}",
            settings.upstream_capacity,
            share.priority,
            lease_seconds=settings.llm_timeout + 30,
        )
    return OpenAICompatibleBackend(
        base_url=base_url,
        api_key=api_key,
        model=model or settings.llm_model,
        timeout=settings.llm_timeout,
        connect_timeout=settings.llm_connect_timeout,
        profile=choose_profile(profile, base_url, model or settings.llm_model),
        context_tokens=context_tokens,
        max_output_tokens=settings.llm_max_output_tokens,
        max_response_bytes=settings.llm_max_response_bytes,
        retry=RetryPolicy(
            max_attempts=settings.llm_max_attempts,
            backoff_base=settings.llm_backoff_base,
            backoff_max=settings.llm_backoff_max,
        ),
        max_connections=settings.llm_concurrency,
        limiter=limiter,
        shared=shared,
        upstream=upstream,
    )


def _host_of(base_url: str) -> str:
    # Host and port only: a URL may carry credentials, and this name is logged.
    parts = urlsplit(base_url)
    host = parts.hostname or "upstream"
    return f"{host}:{parts.port}" if parts.port else host


def priced_model(settings: Settings) -> str:
    """The model name task lines are priced under: what the backend calls upstream."""
    return settings.llm_model if settings.llm_base_url else OFFLINE_MODEL


def backend_label(settings: Settings) -> str:
    """What ``/readyz`` reports, without credentials."""
    return "openai-compatible" if settings.llm_base_url else "offline"


def describe_backend(settings: Settings) -> str:
    """The backend in words for the start-up log: offline, or the URL (no credentials) and model."""
    if settings.llm_base_url is None:
        return "offline engine (no TEXTBATCH_LLM_BASE_URL set)"
    parts = urlsplit(settings.llm_base_url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return f"{shown}, model {settings.llm_model}"

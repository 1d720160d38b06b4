"""Chooses the LLM backend the settings describe."""

from __future__ import annotations

from urllib.parse import urlsplit

from service.llm.base import ChatBackend
from service.llm.limiter import AdaptiveLimiter
from service.llm.offline import OfflineEngine
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.retry import RetryPolicy
from service.settings import Settings


def build_backend(settings: Settings) -> ChatBackend:
    """The OpenAI-compatible client when a base URL is set, else the offline engine."""
    if settings.llm_base_url is None:
        return OfflineEngine()
    return build_openai_backend(
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        settings,
    )


def build_openai_backend(
    base_url: str, api_key: str | None, settings: Settings
) -> OpenAICompatibleBackend:
    """An HTTP client for one upstream, with the settings' model, timeout, retries and pool.

    Each backend gets its own adaptive limiter: one upstream's overload must not
    slow the calls to another.
    """
    limiter = None
    if settings.llm_adaptive_concurrency:
        limiter = AdaptiveLimiter(settings.llm_concurrency, name=_host_of(base_url))
    return OpenAICompatibleBackend(
        base_url=base_url,
        api_key=api_key,
        model=settings.llm_model,
        timeout=settings.llm_timeout,
        retry=RetryPolicy(
            max_attempts=settings.llm_max_attempts,
            backoff_base=settings.llm_backoff_base,
            backoff_max=settings.llm_backoff_max,
        ),
        max_connections=settings.llm_concurrency,
        limiter=limiter,
    )


def _host_of(base_url: str) -> str:
    # Host and port only: a URL may carry credentials, and this name is logged.
    parts = urlsplit(base_url)
    host = parts.hostname or "upstream"
    return f"{host}:{parts.port}" if parts.port else host


def backend_label(settings: Settings) -> str:
    """What ``/readyz`` reports, without credentials."""
    return "openai-compatible" if settings.llm_base_url else "offline"

"""Builds the native batch client an upstream entry asks for, by its ``api`` dialect."""

from __future__ import annotations

from collections.abc import Callable

from service.llm.native.anthropic import AnthropicBatchClient
from service.llm.native.base import NativeBatchClient
from service.llm.native.endpoint import NativeEndpoint
from service.llm.native.openai import OpenAIBatchClient
from service.settings import Settings, UpstreamConfig


def _anthropic(endpoint: NativeEndpoint) -> NativeBatchClient:
    return AnthropicBatchClient(
        endpoint.base_url,
        endpoint.api_key,
        max_lines=endpoint.max_lines,
        max_bytes=endpoint.max_bytes,
        timeout=endpoint.timeout,
    )


# Each dialect's client, built from the endpoint it drives.
DIALECTS: dict[str, Callable[[NativeEndpoint], NativeBatchClient]] = {
    "openai": OpenAIBatchClient,
    "anthropic": _anthropic,
}


def native_endpoint(name: str, upstream: UpstreamConfig, settings: Settings) -> NativeEndpoint:
    """The batch API of upstream ``name`` with the settings' timeouts."""
    return NativeEndpoint(
        name=name,
        base_url=upstream.base_url.rstrip("/"),
        api_key=upstream.api_key.get_secret_value() if upstream.api_key else None,
        max_lines=upstream.batch_max_lines,
        max_bytes=upstream.batch_max_bytes,
        timeout=settings.llm_timeout,
        connect_timeout=settings.llm_connect_timeout,
    )


def build_native_client(
    name: str, upstream: UpstreamConfig, settings: Settings
) -> NativeBatchClient:
    """The client of upstream ``name``'s batch API; ``ValueError`` for a dialect not built in."""
    dialect = DIALECTS.get(upstream.api)
    if dialect is None:
        raise ValueError(f"upstream {name!r}: no native batch dialect {upstream.api!r} here")
    return dialect(native_endpoint(name, upstream, settings))

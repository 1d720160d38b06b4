"""Upstream profiles: what each kind of OpenAI-compatible server takes, and how one is chosen.

A profile says which field carries the output budget, which sampling fields and
whether a seed are sent, how ``response_format`` is written, which schema keywords
are left out, which HTTP statuses are transient and how many output tokens the
server allows. It is named in the settings or inferred from the base URL and the
model name (``infer_profile``; the README states the rules). What a server still
refuses at run time is learned on top of it (``service.llm.adaptation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit


class ResponseFormatStyle(StrEnum):
    """How a JSON schema is asked for, from the strictest form down to none."""

    JSON_SCHEMA_STRICT = "json_schema_strict"
    JSON_SCHEMA = "json_schema"
    # llama-cpp-python's server: ``{"type": "json_object", "schema": …}``, which it enforces.
    JSON_OBJECT_SCHEMA = "json_object_schema"
    JSON_OBJECT = "json_object"
    NONE = "none"


# Each step gives up one thing a server may not take; tolerant reading covers the rest.
WEAKER_STYLE: dict[ResponseFormatStyle, ResponseFormatStyle] = {
    ResponseFormatStyle.JSON_SCHEMA_STRICT: ResponseFormatStyle.JSON_SCHEMA,
    ResponseFormatStyle.JSON_SCHEMA: ResponseFormatStyle.JSON_OBJECT_SCHEMA,
    ResponseFormatStyle.JSON_OBJECT_SCHEMA: ResponseFormatStyle.JSON_OBJECT,
    ResponseFormatStyle.JSON_OBJECT: ResponseFormatStyle.NONE,
}

# 529 is "overloaded" (Anthropic and others); 520-524 are a CDN's "origin unreachable".
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529})

MAX_TOKENS = "max_tokens"
MAX_COMPLETION_TOKENS = "max_completion_tokens"
SAMPLING = frozenset({"temperature", "top_p"})


@dataclass(frozen=True, slots=True)
class UpstreamProfile:
    """The habits of one kind of server; see the module docstring."""

    name: str
    token_field: str = MAX_TOKENS
    sampling_fields: frozenset[str] = SAMPLING
    takes_seed: bool = True
    response_format: ResponseFormatStyle = ResponseFormatStyle.JSON_SCHEMA_STRICT
    dropped_schema_keywords: frozenset[str] = frozenset()
    transient_statuses: frozenset[int] = TRANSIENT_STATUSES
    output_token_cap: int = 16_384
    # The context window assumed when the server does not say; sized to the usual models.
    context_tokens: int = 128_000


PROFILES: dict[str, UpstreamProfile] = {
    profile.name: profile
    for profile in (
        UpstreamProfile("openai", token_field=MAX_COMPLETION_TOKENS),
        # o-series and gpt-5 take only the default temperature and top_p, and no seed.
        UpstreamProfile(
            "openai-reasoning",
            token_field=MAX_COMPLETION_TOKENS,
            sampling_fields=frozenset(),
            takes_seed=False,
            output_token_cap=100_000,
            context_tokens=200_000,
        ),
        UpstreamProfile(
            "vllm", response_format=ResponseFormatStyle.JSON_SCHEMA, context_tokens=32_768
        ),
        UpstreamProfile(
            "ollama",
            response_format=ResponseFormatStyle.JSON_SCHEMA,
            output_token_cap=8_192,
            context_tokens=4_096,
        ),
        UpstreamProfile(
            "llamacpp",
            response_format=ResponseFormatStyle.JSON_SCHEMA,
            output_token_cap=8_192,
            context_tokens=4_096,
        ),
        UpstreamProfile(
            "llama-cpp-python",
            response_format=ResponseFormatStyle.JSON_OBJECT_SCHEMA,
            output_token_cap=8_192,
            context_tokens=4_096,
        ),
        # The compatibility endpoint ignores response_format and seed.
        UpstreamProfile(
            "anthropic",
            takes_seed=False,
            response_format=ResponseFormatStyle.NONE,
            output_token_cap=8_192,
            context_tokens=200_000,
        ),
        UpstreamProfile(
            "gemini",
            response_format=ResponseFormatStyle.JSON_SCHEMA,
            dropped_schema_keywords=frozenset({"additionalProperties"}),
            output_token_cap=8_192,
            context_tokens=1_000_000,
        ),
        UpstreamProfile("litellm"),
        UpstreamProfile("generic", context_tokens=8_192),
    )
}

_REASONING_MODEL = re.compile(r"^(o[1-9]|gpt-5)", re.IGNORECASE)
_HOST_PROFILES = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "openai"),
    ("generativelanguage.googleapis.com", "gemini"),
    ("api.anthropic.com", "anthropic"),
)
_HOST_WORDS = (
    ("llama-cpp-python", "llama-cpp-python"),
    ("ollama", "ollama"),
    ("litellm", "litellm"),
    ("vllm", "vllm"),
    ("llama", "llamacpp"),
)
_PORT_PROFILES = {11434: "ollama", 4000: "litellm", 8080: "llamacpp", 8000: "vllm"}
_MODEL_PREFIXES = (("gpt-", "openai"), ("gemini-", "gemini"), ("claude-", "anthropic"))


def profile_named(name: str) -> UpstreamProfile:
    """The built-in profile ``name``; ``ValueError`` listing the known ones if there is none."""
    profile = PROFILES.get(name.strip().lower())
    if profile is None:
        raise ValueError(f"unknown upstream profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return profile


def choose_profile(configured: str | None, base_url: str, model: str) -> UpstreamProfile:
    """The configured profile, else the one ``infer_profile`` names."""
    if configured is not None and configured.strip():
        return profile_named(configured)
    return PROFILES[infer_profile(base_url, model)]


def infer_profile(base_url: str, model: str) -> str:
    """The profile name for an upstream, from the first rule that matches.

    1. the host is a known provider's API (OpenAI, Azure OpenAI, Gemini, Anthropic);
       on OpenAI's, a reasoning model (``o1``…``o9``, ``gpt-5``) gets ``openai-reasoning``;
    2. the host name holds a server's name (``ollama``, ``litellm``, ``vllm``, ``llama``);
    3. the port is a server's default (11434 Ollama, 4000 LiteLLM, 8080 llama.cpp, 8000 vLLM);
    4. the model name: reasoning model, ``gpt-``, ``gemini-``, ``claude-``;
    5. else ``generic``.
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    reasoning = bool(_REASONING_MODEL.match(model.strip()))
    for suffix, name in _HOST_PROFILES:
        if host == suffix or host.endswith(suffix if suffix.startswith(".") else "." + suffix):
            return "openai-reasoning" if name == "openai" and reasoning else name
    for word, name in _HOST_WORDS:
        if word in host:
            return name
    try:
        port = parts.port
    except ValueError:
        port = None
    if port in _PORT_PROFILES:
        return _PORT_PROFILES[port]
    if reasoning:
        return "openai-reasoning"
    lowered = model.strip().lower()
    for prefix, name in _MODEL_PREFIXES:
        if lowered.startswith(prefix):
            return name
    return "generic"

"""Profiles: how each kind of server is asked, and how the profile of an upstream is chosen."""

from __future__ import annotations

from typing import Any

import pytest

from service.llm.base import ChatRequest
from service.llm.factory import build_backend
from service.llm.offline import OfflineEngine
from service.llm.openai_compat import OpenAICompatibleBackend
from service.llm.profiles import PROFILES, TRANSIENT_STATUSES, infer_profile, profile_named
from service.llm.request_shape import Adaptations, chat_payload, without_keywords
from service.llm.routing import UpstreamRouter
from service.settings import Settings, UpstreamConfig

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "labels": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    # A field named like a keyword is the caller's, and stays.
                    "additionalProperties": {"type": "boolean"},
                    "name": {"type": "string"},
                },
                "additionalProperties": False,
            },
            "minItems": 2,
            "maxItems": 2,
        }
    },
    "required": ["labels"],
    "additionalProperties": False,
}
REQUEST = ChatRequest(
    messages=[{"role": "user", "content": "hi"}],
    response_schema=SCHEMA,
    schema_name="classify",
    temperature=0.0,
    top_p=1.0,
    seed=7,
    max_tokens=50_000,
)


def payload_for(profile: str, *, cap: int = 16_384) -> dict[str, Any]:
    return chat_payload(
        REQUEST,
        model="m",
        profile=PROFILES[profile],
        adaptations=Adaptations(),
        output_token_cap=min(cap, PROFILES[profile].output_token_cap),
    )


@pytest.mark.parametrize(
    ("base_url", "model", "expected"),
    [
        ("https://api.openai.com/v1", "gpt-4o-mini", "openai"),
        ("https://api.openai.com/v1", "o3-mini", "openai-reasoning"),
        ("https://api.openai.com/v1", "gpt-5", "openai-reasoning"),
        ("https://myres.openai.azure.com/openai/v1", "o1", "openai-reasoning"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "gemini-2.0-flash", "gemini"),
        ("https://api.anthropic.com/v1", "claude-sonnet-4-5", "anthropic"),
        ("http://localhost:11434/v1", "qwen3:0.6b", "ollama"),
        ("http://ollama.internal/v1", "llama3", "ollama"),
        ("http://127.0.0.1:8080/v1", "smollm2", "llamacpp"),
        ("http://127.0.0.1:8000/v1", "Qwen/Qwen3-8B", "vllm"),
        ("http://litellm-proxy:4000", "anything", "litellm"),
        ("http://llama-cpp-python.lan/v1", "m", "llama-cpp-python"),
        ("https://gateway.example.com/v1", "o4-mini", "openai-reasoning"),
        ("https://gateway.example.com/v1", "claude-3-haiku", "anthropic"),
        ("https://gateway.example.com/v1", "my-model", "generic"),
    ],
)
def test_profile_is_inferred_from_base_url_then_model(
    base_url: str, model: str, expected: str
) -> None:
    assert infer_profile(base_url, model) == expected


def test_a_configured_profile_wins_and_an_unknown_one_stops_start_up() -> None:
    settings = Settings(llm_base_url="http://127.0.0.1:8080/v1", llm_profile="openai-reasoning")
    backend = build_backend(settings)
    assert isinstance(backend, OpenAICompatibleBackend)
    assert backend.profile.name == "openai-reasoning"

    with pytest.raises(ValueError, match="unknown upstream profile 'gpt'; known: anthropic"):
        build_backend(Settings(llm_base_url="http://x/v1", llm_profile="gpt"))

    gemini = UpstreamConfig(base_url="http://x/v1", profile="gemini")
    named = Settings(upstreams={"g": gemini})
    route = UpstreamRouter(named).resolve("g/gemini-pro")
    assert route.backend.profile.name == "gemini"
    assert profile_named(" Gemini ").name == "gemini"


def test_reasoning_profile_sends_completion_tokens_and_no_sampling() -> None:
    payload = payload_for("openai-reasoning", cap=100_000)

    assert payload["max_completion_tokens"] == 50_000
    for absent in ("max_tokens", "temperature", "top_p", "seed"):
        assert absent not in payload
    assert payload["response_format"]["json_schema"]["strict"] is True


def test_generic_profile_sends_budget_sampling_and_seed_clamped_to_the_cap() -> None:
    payload = payload_for("generic", cap=4_000)

    assert payload["max_tokens"] == 4_000
    assert (payload["temperature"], payload["top_p"], payload["seed"]) == (0.0, 1.0, 7)
    assert payload["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "classify", "schema": SCHEMA, "strict": True},
    }


def test_gemini_profile_leaves_additional_properties_out_at_every_depth() -> None:
    schema = payload_for("gemini")["response_format"]["json_schema"]["schema"]

    assert "additionalProperties" not in schema
    items = schema["properties"]["labels"]["items"]
    assert "additionalProperties" not in items
    assert items["properties"]["additionalProperties"] == {"type": "boolean"}
    assert schema["properties"]["labels"]["minItems"] == 2
    assert "strict" not in payload_for("gemini")["response_format"]["json_schema"]


def test_llama_cpp_python_gets_json_object_with_its_schema() -> None:
    assert payload_for("llama-cpp-python")["response_format"] == {
        "type": "json_object",
        "schema": SCHEMA,
    }


def test_anthropic_gets_no_response_format_and_no_seed() -> None:
    payload = payload_for("anthropic")

    assert "response_format" not in payload
    assert "seed" not in payload
    assert payload["max_tokens"] == PROFILES["anthropic"].output_token_cap


def test_without_keywords_keeps_the_schema_when_there_is_nothing_to_drop() -> None:
    assert without_keywords(SCHEMA, frozenset()) is SCHEMA
    trimmed = without_keywords(SCHEMA, {"minItems", "maxItems"})
    assert "minItems" not in trimmed["properties"]["labels"]
    assert trimmed["properties"]["labels"]["items"] == SCHEMA["properties"]["labels"]["items"]


def test_every_profile_retries_529_and_the_cdn_statuses_and_states_its_limits() -> None:
    for profile in PROFILES.values():
        assert {529, 520, 521, 522, 523, 524, 429, 503} <= profile.transient_statuses
        assert 400 not in profile.transient_statuses
        assert profile.output_token_cap >= 1_024
        assert profile.context_tokens >= profile.output_token_cap // 2
    assert PROFILES["generic"].transient_statuses == TRANSIENT_STATUSES


def test_output_token_cap_is_the_lower_of_profile_and_setting() -> None:
    low = build_backend(Settings(llm_base_url="http://x:8080/v1", llm_max_output_tokens=1_000))
    high = build_backend(Settings(llm_base_url="http://x:8080/v1"))

    assert low.output_token_cap == 1_000
    assert high.output_token_cap == PROFILES["llamacpp"].output_token_cap
    assert OfflineEngine().output_token_cap >= 1_000_000

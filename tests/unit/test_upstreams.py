"""Routing pass-through models to the default or a named upstream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.errors import InvalidRequest
from service.llm.factory import build_backend
from service.llm.routing import UpstreamRouter
from service.settings import Settings, UpstreamConfig, load_settings
from standins.upstream import StandinUpstream

DEFAULT_KEY = "sk-default-secret-0123456789"
ANTHROPIC_KEY = "sk-anthropic-secret-9876543210"


def _settings(*, default: bool = True, **upstreams: UpstreamConfig) -> Settings:
    overrides: dict[str, Any] = {"upstreams": upstreams}
    if default:
        overrides |= {"llm_base_url": "http://default.test/v1", "llm_api_key": DEFAULT_KEY}
    return load_settings(**overrides)


def _anthropic(base_url: str = "http://anthropic.test/v1") -> UpstreamConfig:
    return UpstreamConfig.model_validate({"base_url": base_url, "api_key": ANTHROPIC_KEY})


def test_bare_model_goes_to_default_upstream_unchanged() -> None:
    router = UpstreamRouter(_settings(anthropic=_anthropic()))

    route = router.resolve("gpt-4o-mini")

    assert route.provider == "default"
    assert route.upstream_model == "gpt-4o-mini"
    assert route.backend is router.default_backend()
    assert router.route_fault("gpt-4o-mini") is None


def test_known_provider_prefix_is_stripped_on_the_first_slash_only() -> None:
    router = UpstreamRouter(_settings(anthropic=_anthropic()))

    route = router.resolve("anthropic/org/claude-haiku-4.5")

    assert route.provider == "anthropic"
    assert route.upstream_model == "org/claude-haiku-4.5"
    assert route.backend.base_url == "http://anthropic.test/v1"


def test_unknown_provider_is_a_model_error_with_the_default_hint() -> None:
    router = UpstreamRouter(_settings(anthropic=_anthropic()))

    fault = router.route_fault("meta-llama/Llama-3")
    with pytest.raises(InvalidRequest) as caught:
        router.resolve("meta-llama/Llama-3")

    assert fault is not None
    assert "unknown provider 'meta-llama'" in fault
    assert "default/meta-llama/Llama-3" in fault
    assert caught.value.param == "model"
    assert caught.value.message == fault


def test_default_prefix_sends_a_slashed_name_to_the_default_upstream() -> None:
    router = UpstreamRouter(_settings(anthropic=_anthropic()))

    route = router.resolve("default/meta-llama/Llama-3")

    assert route.provider == "default"
    assert route.upstream_model == "meta-llama/Llama-3"
    assert route.backend is router.default_backend()


@pytest.mark.parametrize("model", ["gpt-4o-mini", "default/gpt-4o-mini"])
def test_without_default_upstream_bare_models_cannot_be_routed(model: str) -> None:
    router = UpstreamRouter(_settings(default=False, anthropic=_anthropic()))

    fault = router.route_fault(model)

    assert router.default_backend() is None
    assert fault is not None
    assert "TEXTBATCH_LLM_BASE_URL" in fault
    assert router.resolve("anthropic/claude-haiku-4.5").provider == "anthropic"


@pytest.mark.parametrize("model", ["", "  ", "anthropic/"])
def test_empty_model_names_are_refused(model: str) -> None:
    router = UpstreamRouter(_settings(anthropic=_anthropic()))

    assert router.route_fault(model) is not None


def test_an_upstream_may_not_take_the_reserved_default_name() -> None:
    settings = load_settings(upstreams={"default": _anthropic()})

    with pytest.raises(ValueError, match="reserved"):
        UpstreamRouter(settings)


def test_default_backend_matches_the_factory_backend() -> None:
    settings = _settings()
    router = UpstreamRouter(settings)
    built = build_backend(settings)

    default = router.default_backend()

    assert type(default) is type(built)
    assert repr(default) == repr(built)


def test_keys_never_show_in_reprs_or_errors() -> None:
    router = UpstreamRouter(_settings(anthropic=_anthropic()))
    texts = [
        repr(router),
        repr(router.resolve("gpt-4o-mini")),
        repr(router.resolve("anthropic/claude-haiku-4.5")),
        str(router.route_fault("nope/model")),
        str(router.route_fault("anthropic/")),
    ]
    with pytest.raises(InvalidRequest) as caught:
        router.resolve("nope/model")
    texts.append(str(caught.value))

    for text in texts:
        assert DEFAULT_KEY not in text
        assert ANTHROPIC_KEY not in text


def test_forward_reaches_the_named_upstream_with_its_key_and_bare_model() -> None:
    with StandinUpstream(api_key=ANTHROPIC_KEY) as upstream:
        router = UpstreamRouter(_settings(anthropic=_anthropic(upstream.base_url)))
        body = {"model": "anthropic/claude-haiku-4.5", "input": "two words"}

        async def forward() -> tuple[int, dict[str, Any], str | None]:
            try:
                return await router.forward("/v1/embeddings", body)
            finally:
                await router.aclose()

        status, answer, _ = asyncio.run(forward())

        (call,) = upstream.calls
    assert status == 200
    assert call.path == "/v1/embeddings"
    assert call.auth_ok
    assert call.body["model"] == "claude-haiku-4.5"
    assert answer["model"] == "claude-haiku-4.5"
    assert answer["object"] == "list"
    assert body["model"] == "anthropic/claude-haiku-4.5"

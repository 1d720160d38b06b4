"""The provider headers' choice in the router, the caller's key on a shared pool, the key's
seal, the usage shapes of the newer endpoints and the cached-token price."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet

from service.errors import InvalidRequest
from service.llm.answer_verdicts import rejection
from service.llm.http_exchange import UpstreamAnswer
from service.llm.pricing import ModelPrice, PriceTable, summarize_cost
from service.llm.reply_reading import PassThroughUsage, passthrough_usage
from service.llm.routing import ProviderChoice, UpstreamRouter
from service.settings import UpstreamConfig, load_settings
from service.settings_check import secret_key_problem
from service.store.sealing import KeySeal, SealBroken
from standins.upstream import StandinUpstream

CALLER_KEY = "sk-caller-unit-key-3c9d"


def _router(beta_url: str = "http://beta.test/v1", **settings: Any) -> UpstreamRouter:
    beta = UpstreamConfig.model_validate(
        {"base_url": beta_url, "api_key": "sk-beta", "byok": True, "model": "beta-model"}
    )
    gamma = UpstreamConfig.model_validate({"base_url": "http://gamma.test/v1"})
    return UpstreamRouter(
        load_settings(
            llm_base_url="http://default.test/v1",
            llm_api_key="sk-default",
            upstreams={"beta": beta, "gamma": gamma},
            **settings,
        )
    )


def test_bare_model_goes_to_the_chosen_upstream_and_a_prefix_still_wins() -> None:
    router = _router()
    chosen = ProviderChoice("beta")

    assert router.resolve("m", chosen).provider == "beta"
    assert router.resolve("gamma/m", chosen).provider == "gamma"
    assert router.resolve("m").provider == "default"
    assert router.priced_model("m", chosen) == "beta/m"
    assert router.priced_model("gamma/m", chosen) == "gamma/m"


def test_task_backend_is_the_chosen_upstreams_with_its_task_model() -> None:
    router = _router()

    assert router.task_backend(ProviderChoice()) is None
    backend = router.task_backend(ProviderChoice("beta"))
    assert backend is not None and backend.model == "beta-model"
    keyed = router.task_backend(ProviderChoice("beta", CALLER_KEY))
    assert keyed is not None and keyed is not backend and keyed.model == "beta-model"


@pytest.mark.parametrize(
    ("choice", "code", "param"),
    [
        (ProviderChoice("nowhere"), "unknown_provider", "x-textbatch-provider"),
        (
            ProviderChoice("gamma", CALLER_KEY),
            "provider_key_not_allowed",
            "x-textbatch-provider-key",
        ),
        (ProviderChoice(None, CALLER_KEY), "provider_key_not_allowed", "x-textbatch-provider-key"),
    ],
)
def test_a_choice_the_upstreams_do_not_allow_is_refused(
    choice: ProviderChoice, code: str, param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        _router().check_choice(choice)
    assert (refused.value.code, refused.value.param) == (code, param)
    assert CALLER_KEY not in refused.value.message


def test_default_upstream_takes_a_callers_key_when_llm_byok_is_set() -> None:
    router = _router(llm_byok=True)
    router.check_choice(ProviderChoice(None, CALLER_KEY))
    assert router.resolve("m", ProviderChoice(None, CALLER_KEY)).keyed


def test_choice_repr_never_shows_the_key() -> None:
    assert CALLER_KEY not in repr(ProviderChoice("beta", CALLER_KEY))


def test_callers_key_goes_over_the_upstreams_own_pool_and_only_for_its_calls() -> None:
    async def scenario(upstream: StandinUpstream) -> tuple[bool, bool]:
        router = _router(upstream.base_url)
        owner = router.resolve("beta/m").backend
        view = router.resolve("m", ProviderChoice("beta", CALLER_KEY)).backend
        await router.forward(
            "/v1/embeddings", {"model": "m", "input": "a"}, ProviderChoice("beta", CALLER_KEY)
        )
        await router.forward("/v1/embeddings", {"model": "beta/m", "input": "b"})
        shared = view._session() is owner._session()
        await view.aclose()  # a view owns nothing: its owner's pool stays open
        still_open = not owner._session().closed
        await router.aclose()
        return shared, still_open

    with StandinUpstream() as upstream:
        shared, still_open = asyncio.run(scenario(upstream))
        assert upstream.authorizations == [f"Bearer {CALLER_KEY}", "Bearer sk-beta"]
    assert shared and still_open


def test_seal_opens_only_with_its_secret_key() -> None:
    secret = Fernet.generate_key().decode()
    sealed = KeySeal(secret).seal(CALLER_KEY)

    assert CALLER_KEY.encode() not in sealed
    assert KeySeal(secret).open(sealed) == CALLER_KEY
    with pytest.raises(SealBroken):
        KeySeal(Fernet.generate_key().decode()).open(sealed)


def test_secret_key_is_required_only_when_an_upstream_allows_byok() -> None:
    beta = {"beta": {"base_url": "http://beta.test/v1", "byok": True}}
    assert secret_key_problem(load_settings()) is None
    missing = secret_key_problem(load_settings(upstreams=beta))
    assert missing is not None and missing.startswith("TEXTBATCH_SECRET_KEY: required")
    bad = secret_key_problem(load_settings(upstreams=beta, secret_key="short"))
    assert bad is not None and "not a valid Fernet key" in bad and "short" not in bad
    good = load_settings(upstreams=beta, secret_key=Fernet.generate_key().decode())
    assert secret_key_problem(good) is None


@pytest.mark.parametrize(
    ("answer", "usage"),
    [
        (
            {
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 4,
                    "prompt_tokens_details": {"cached_tokens": 6},
                }
            },
            PassThroughUsage(10, 4, 6),
        ),
        (
            {
                "usage": {
                    "input_tokens": 8,
                    "output_tokens": 3,
                    "input_tokens_details": {"cached_tokens": 2},
                }
            },
            PassThroughUsage(8, 3, 2),
        ),
        ({"usage": {"prompt_tokens": 5, "total_tokens": 5}}, PassThroughUsage(5, 0, 0)),
        ({"results": [{"flagged": False}]}, PassThroughUsage()),
        # A server claiming more cached than input tokens is held to its input.
        (
            {"usage": {"input_tokens": 2, "input_tokens_details": {"cached_tokens": 9}}},
            PassThroughUsage(2, 0, 2),
        ),
    ],
)
def test_pass_through_usage_is_read_from_each_endpoints_shape(
    answer: dict[str, Any], usage: PassThroughUsage
) -> None:
    assert passthrough_usage(answer) == usage


def test_cached_tokens_cost_the_cached_rate_where_the_table_has_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(
        orjson.dumps(
            {
                "cached": {"input": 2.0, "output": 8.0, "cached_input": 0.5},
                "uncached": {"input": 1.0, "output": 1.0},
            }
        )
    )
    table = PriceTable.load(path)
    assert table.prices["cached"] == ModelPrice(2.0, 8.0, 0.5)

    cost = summarize_cost(
        {"cached": (1_000_000, 0), "uncached": (1_000_000, 0)},
        table,
        0.0,
        {"cached": 400_000, "uncached": 400_000},
    )
    # cached: 600k at 2.0 + 400k at 0.5; uncached: all 1M at 1.0.
    assert cost.input_cost == pytest.approx(1.2 + 0.2 + 1.0)


def test_a_bad_cached_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(orjson.dumps({"m": {"input": 1.0, "output": 1.0, "cached_input": -1}}))
    with pytest.raises(ValueError, match="cached_input"):
        PriceTable.load(path)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_not_quoted_even_masked(status: int) -> None:
    masked = "sk-cal****3c9d"
    body = orjson.dumps({"error": {"message": f"Incorrect API key provided: {masked}"}})
    error = rejection(UpstreamAnswer(status, {}, body), 1, CALLER_KEY)

    assert error.code == "upstream_rejected" and error.upstream_status == status
    assert masked not in error.message and "3c9d" not in error.message

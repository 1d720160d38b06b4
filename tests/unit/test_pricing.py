"""Usage cost from the price table, with the batch discount, in exact decimal sums."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.llm.pricing import CostSummary, ModelPrice, PriceTable, summarize_cost

TABLE = PriceTable(
    {
        "gpt-4o-mini": ModelPrice(0.15, 0.60),
        "anthropic/claude-haiku-4.5": ModelPrice(1.0, 5.0),
    }
)


def _write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "prices.json"
    path.write_bytes(orjson.dumps(content))
    return path


def test_load_reads_prices_per_million(tmp_path: Path) -> None:
    path = _write(tmp_path, {"gpt-4o-mini": {"input": 0.15, "output": 0.6}})

    table = PriceTable.load(path)

    assert table.price_of("gpt-4o-mini") == ModelPrice(0.15, 0.6)


def test_provider_prefixed_model_falls_back_to_the_bare_name() -> None:
    assert TABLE.price_of("anthropic/claude-haiku-4.5") == ModelPrice(1.0, 5.0)
    assert TABLE.price_of("openai/gpt-4o-mini") == ModelPrice(0.15, 0.60)
    assert TABLE.price_of("default/gpt-4o-mini") == ModelPrice(0.15, 0.60)
    assert TABLE.price_of("claude-haiku-4.5") is None


def test_no_table_prices_only_the_offline_engine() -> None:
    table = PriceTable.load(None)

    assert table.price_of("gpt-4o-mini") is None
    assert summarize_cost({"offline": (1000, 500)}, table, 0.5) == CostSummary(0.0, 0.0, 0.0, [])


def test_batch_discount_halves_the_cost() -> None:
    tokens = {"gpt-4o-mini": (1_000_000, 1_000_000)}

    full = summarize_cost(tokens, TABLE, 0.0)
    batch = summarize_cost(tokens, TABLE, 0.5)

    assert full == CostSummary(0.15, 0.6, 0.75, [])
    assert batch == CostSummary(0.075, 0.3, 0.375, [])


def test_sums_are_exact_where_floats_would_drift() -> None:
    tokens = {"gpt-4o-mini": (1, 0), "anthropic/claude-haiku-4.5": (0, 1)}

    summary = summarize_cost(tokens, TABLE, 0.0)

    assert summary.total_cost == 0.00000515


def test_unpriced_model_makes_every_cost_unknown_and_is_named() -> None:
    tokens = {"zeta": (10, 10), "gpt-4o-mini": (10, 10), "alpha/x": (1, 0), "idle": (0, 0)}

    summary = summarize_cost(tokens, TABLE, 0.5)

    assert summary == CostSummary(None, None, None, ["alpha/x", "zeta"])


def test_no_tokens_cost_nothing() -> None:
    assert summarize_cost({}, PriceTable(), 0.5) == CostSummary(0.0, 0.0, 0.0, [])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"m": {"input": 1}}', "must be"),
        (b'{"m": {"input": 1, "output": -1}}', "non-negative"),
        (b'{"m": {"input": true, "output": 1}}', "non-negative"),
        (b'{"m": {"input": "1", "output": 1}}', "non-negative"),
    ],
)
def test_invalid_table_names_the_path(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "prices.json"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=message) as caught:
        PriceTable.load(path)

    assert str(path) in str(caught.value)


def test_missing_table_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(ValueError, match="cannot read") as caught:
        PriceTable.load(path)

    assert str(path) in str(caught.value)


_prices = st.decimals(min_value=0, max_value=1000, places=4).map(float)
_tokens = st.tuples(st.integers(0, 10**12), st.integers(0, 10**12))


@given(
    prices=st.dictionaries(
        st.text(min_size=1, max_size=8), st.tuples(_prices, _prices), max_size=5
    ),
    discount=st.decimals(min_value=0, max_value=1, places=3).map(float),
    data=st.data(),
)
def test_summary_equals_decimal_arithmetic(
    prices: dict[str, tuple[float, float]], discount: float, data: st.DataObject
) -> None:
    table = PriceTable({model: ModelPrice(*price) for model, price in prices.items()})
    tokens = {model: data.draw(_tokens) for model in prices if not model.startswith("offline")}

    summary = summarize_cost(tokens, table, discount)

    factor = 1 - Decimal(str(discount))
    step = Decimal("1e-12")
    expected_in = (
        sum((Decimal(n) * Decimal(str(prices[m][0])) for m, (n, _) in tokens.items()), Decimal(0))
        / Decimal(10**6)
        * factor
    )
    expected_out = (
        sum((Decimal(n) * Decimal(str(prices[m][1])) for m, (_, n) in tokens.items()), Decimal(0))
        / Decimal(10**6)
        * factor
    )
    assert summary.input_cost == float(expected_in.quantize(step))
    assert summary.output_cost == float(expected_out.quantize(step))
    assert summary.total_cost == float((expected_in + expected_out).quantize(step))
    assert summary.unpriced_models == []

"""Turns token counts into USD cost from the configured price table.

Sums are taken in ``Decimal`` so a batch of many lines adds up exactly, and only the
final figures become floats. A model the table does not price makes the cost
unknown (``None``), never zero: a wrong 0 on an invoice is worse than a blank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path

import orjson

from service.llm.offline.engine import OFFLINE_MODEL

_PER_MILLION = Decimal(1_000_000)
_RESULT_STEP = Decimal("1e-12")
_PRECISION = 60
_PRICE_KEYS = frozenset({"input", "output"})


@dataclass(frozen=True)
class ModelPrice:
    """USD per million input and output tokens of one model."""

    input_per_million: float
    output_per_million: float


_FREE = ModelPrice(0.0, 0.0)


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name, as read from ``TEXTBATCH_PRICE_TABLE``."""

    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> PriceTable:
        """Read the JSON table at ``path``; ``None`` gives an empty table.

        Raises ``ValueError`` naming the path when the file is missing or malformed,
        so a bad table stops the service at start-up rather than mis-billing later.
        """
        if path is None:
            return cls()
        try:
            raw = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ValueError(f"price table {path}: cannot read it: {exc.strerror}") from exc
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"price table {path}: not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"price table {path}: must be a JSON object of model -> prices")
        return cls({model: _parse_price(path, model, entry) for model, entry in raw.items()})

    def price_of(self, model: str) -> ModelPrice | None:
        """The model's price: the exact name first, then for ``provider/model`` the bare model."""
        if model == OFFLINE_MODEL:
            return _FREE
        price = self.prices.get(model)
        if price is None and "/" in model:
            price = self.prices.get(model.split("/", 1)[1])
        return price


@dataclass(frozen=True)
class CostSummary:
    """The USD cost of some usage; all ``None`` when any used model is unpriced."""

    input_cost: float | None
    output_cost: float | None
    total_cost: float | None
    unpriced_models: list[str]


def summarize_cost(
    tokens_by_model: Mapping[str, tuple[int, int]], table: PriceTable, discount: float
) -> CostSummary:
    """Cost of ``(input, output)`` tokens per model, less ``discount`` (0.5 is half price)."""
    used = {model: tokens for model, tokens in tokens_by_model.items() if any(tokens)}
    unpriced = sorted(model for model in used if table.price_of(model) is None)
    if unpriced:
        return CostSummary(None, None, None, unpriced)
    # The default 28 digits would round the sums of a very large batch.
    with localcontext(prec=_PRECISION):
        factor = 1 - _decimal(discount)
        input_cost = output_cost = Decimal(0)
        for model, (input_tokens, output_tokens) in used.items():
            price = table.price_of(model)
            assert price is not None  # every unpriced model returned above
            input_cost += input_tokens * _decimal(price.input_per_million)
            output_cost += output_tokens * _decimal(price.output_per_million)
        input_cost = input_cost / _PER_MILLION * factor
        output_cost = output_cost / _PER_MILLION * factor
        return CostSummary(
            input_cost=_to_float(input_cost),
            output_cost=_to_float(output_cost),
            total_cost=_to_float(input_cost + output_cost),
            unpriced_models=[],
        )


def _parse_price(path: Path, model: object, entry: object) -> ModelPrice:
    where = f"price table {path}, model {model!r}"
    if not isinstance(entry, dict) or set(entry) != _PRICE_KEYS:
        raise ValueError(f'{where}: must be {{"input": <USD>, "output": <USD>}} per million tokens')
    for key in ("input", "output"):
        value = entry[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{where}: {key!r} must be a non-negative number, got {value!r}")
    return ModelPrice(float(entry["input"]), float(entry["output"]))


def _decimal(value: float) -> Decimal:
    # Through str, so 0.15 is the 0.15 the table says, not its binary neighbour.
    return Decimal(str(value))


def _to_float(value: Decimal) -> float:
    return float(value.quantize(_RESULT_STEP, rounding=ROUND_HALF_EVEN))

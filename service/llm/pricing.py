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
# Optional: USD per million input tokens the upstream served from its prompt cache.
_CACHED_KEY = "cached_input"


@dataclass(frozen=True)
class ModelPrice:
    """USD per million input and output tokens of one model, and of cached input tokens."""

    input_per_million: float
    output_per_million: float
    # None: cached input tokens cost what other input tokens do.
    cached_input_per_million: float | None = None


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
    tokens_by_model: Mapping[str, tuple[int, int]],
    table: PriceTable,
    discount: float,
    cached_by_model: Mapping[str, int] | None = None,
) -> CostSummary:
    """Cost of ``(input, output)`` tokens per model, less ``discount`` (0.5 is half price).

    ``cached_by_model``: how many of a model's input tokens came from the upstream's prompt
    cache; they are priced at the model's ``cached_input`` rate when the table has one.
    """
    cached_by_model = cached_by_model or {}
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
            cached = min(cached_by_model.get(model, 0), input_tokens)
            if price.cached_input_per_million is not None and cached:
                input_cost += cached * _decimal(price.cached_input_per_million)
                input_tokens -= cached
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
    if not isinstance(entry, dict) or not _PRICE_KEYS <= set(entry) <= _PRICE_KEYS | {_CACHED_KEY}:
        raise ValueError(
            f'{where}: must be {{"input": <USD>, "output": <USD>}} per million tokens, '
            f'optionally with "{_CACHED_KEY}": <USD>'
        )
    for key in ("input", "output", _CACHED_KEY):
        if key not in entry:
            continue
        value = entry[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{where}: {key!r} must be a non-negative number, got {value!r}")
    cached = entry.get(_CACHED_KEY)
    return ModelPrice(
        float(entry["input"]),
        float(entry["output"]),
        float(cached) if cached is not None else None,
    )


def _decimal(value: float) -> Decimal:
    # Through str, so 0.15 is the 0.15 the table says, not its binary neighbour.
    return Decimal(str(value))


def _to_float(value: Decimal) -> float:
    return float(value.quantize(_RESULT_STEP, rounding=ROUND_HALF_EVEN))

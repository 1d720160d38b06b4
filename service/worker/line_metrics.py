"""What a recorded batch line adds to the metrics: its task and outcome, its tokens and cost."""

from __future__ import annotations

from typing import Any

from service.execution import is_task_body
from service.llm.factory import priced_model
from service.llm.pricing import PriceTable, summarize_cost
from service.observability.metrics import count_line_finished, count_usage, model_label
from service.settings import Settings
from service.store.records import LineResult

PASSTHROUGH = "passthrough"


def task_label(line: dict[str, Any]) -> str:
    """The task a line runs (``extract``…), or ``passthrough`` for a model sent on as it is."""
    body = line.get("body")
    if isinstance(body, dict) and is_task_body(body):
        return str(body["model"])
    return PASSTHROUGH


class FinishedLines:
    """Counts finished lines, with tokens and cost by model, as the worker records them."""

    def __init__(self, settings: Settings) -> None:
        # Checked at start-up by the command; a worker prices lines as the API does.
        self.prices = PriceTable.load(settings.price_table)
        self.discount = settings.batch_discount
        self.task_model = priced_model(settings)

    def count(self, line: dict[str, Any], result: LineResult) -> None:
        count_line_finished(task_label(line), result.outcome.value)
        tokens = (result.input_tokens, result.output_tokens)
        if not any(tokens):
            return
        model = result.priced_model
        cost = summarize_cost({model: tokens}, self.prices, self.discount).total_cost
        count_usage(model_label(model, self._named), *tokens, cost)

    def _named(self, model: str) -> bool:
        # Bounded by the configuration: the task model and the models the price table names.
        return model == self.task_model or self.prices.price_of(model) is not None

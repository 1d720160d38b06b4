"""Metric labels stay bounded: unknown models become ``other``, retry reasons are kinds."""

from __future__ import annotations

from pathlib import Path

import orjson
from prometheus_client import REGISTRY

from service.errors import UpstreamFailed, UpstreamRateLimited, UpstreamTimeout
from service.llm.call_metrics import retry_reason
from service.settings import load_settings
from service.store.lifecycle import LineOutcome
from service.store.records import LineResult
from service.worker.line_metrics import FinishedLines, task_label


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def finished_lines(tmp_path: Path) -> FinishedLines:
    prices = tmp_path / "prices.json"
    prices.write_bytes(orjson.dumps({"priced-model": {"input": 2.0, "output": 8.0}}))
    return FinishedLines(
        load_settings(
            llm_base_url="http://127.0.0.1:9/v1",
            llm_model="task-model",
            price_table=prices,
            batch_discount=0.5,
        )
    )


def result(model: str, input_tokens: int, output_tokens: int) -> LineResult:
    return LineResult(0, b"{}", LineOutcome.SUCCEEDED, input_tokens, output_tokens, model)


def test_a_model_the_configuration_does_not_name_is_counted_as_other(tmp_path: Path) -> None:
    lines = finished_lines(tmp_path)
    chat = {"body": {"model": "client-chosen-name-1234", "messages": []}}
    before = sample("textbatch_tokens_total", model="other", kind="input")
    lines.count(chat, result("client-chosen-name-1234", 7, 3))
    assert sample("textbatch_tokens_total", model="other", kind="input") == before + 7
    assert sample("textbatch_tokens_total", model="client-chosen-name-1234", kind="input") == 0


def test_priced_and_task_models_keep_their_names_and_cost_is_discounted(tmp_path: Path) -> None:
    lines = finished_lines(tmp_path)
    cost_before = sample("textbatch_cost_usd_total", model="priced-model")
    task_before = sample("textbatch_tokens_total", model="task-model", kind="output")
    lines.count({"body": {"model": "priced-model"}}, result("priced-model", 1_000_000, 500_000))
    lines.count({"body": {"model": "summarize", "text": "x"}}, result("task-model", 5, 4))
    # (1M x $2 + 0.5M x $8) per million, at half price.
    assert sample("textbatch_cost_usd_total", model="priced-model") == cost_before + 3.0
    assert sample("textbatch_tokens_total", model="task-model", kind="output") == task_before + 4


def test_lines_are_labelled_by_task_or_passthrough() -> None:
    assert task_label({"body": {"model": "extract"}}) == "extract"
    assert task_label({"body": {"model": "classify"}}) == "classify"
    assert task_label({"body": {"model": "gpt-4o"}}) == "passthrough"
    assert task_label({"body": "not an object"}) == "passthrough"


def test_retry_reasons_name_the_kind_of_failure_never_its_message() -> None:
    secret_text = "the line's own text"
    assert retry_reason(UpstreamTimeout(secret_text)) == "timeout"
    assert retry_reason(UpstreamRateLimited(secret_text, upstream_status=429)) == "http_429"
    assert retry_reason(UpstreamFailed(secret_text)) == "connection"
    assert retry_reason(UpstreamFailed(secret_text, upstream_status=200)) == "unusable_body"
    assert retry_reason(UpstreamFailed(secret_text, upstream_status=503)) == "http_503"

"""The service's Prometheus metrics, defined once here and recorded by every layer through them.

No layer touches prometheus_client itself. The metrics are built on first use, not
at import: in multi-process mode ``PROMETHEUS_MULTIPROC_DIR`` must be set before
prometheus_client is imported, and ``textbatch serve`` sets it only once it has read
its settings (``service.observability.exposition``).

No label ever carries an API key, a line's text or a custom_id: labels are task names,
outcomes, upstream names from the configuration, status classes and model names
bounded by ``model_label``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

# A model name no configuration or price table names: counted, but under one label.
OTHER_MODEL = "other"
# Upstream calls take from milliseconds (a local model's short answer) to a minute.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True, slots=True)
class _Metrics:
    lines_finished: Counter
    upstream_calls: Counter
    upstream_duration: Histogram
    upstream_in_flight: Gauge
    upstream_limit: Gauge
    capacity_waiters: Gauge
    tokens: Counter
    cost: Counter
    ingest_bytes: Counter
    ingest_lines: Counter


@functools.cache
def defined() -> _Metrics:
    """The metrics, built (and prometheus_client imported) on the first call."""
    from prometheus_client import Counter, Gauge, Histogram

    return _Metrics(
        lines_finished=Counter(
            "textbatch_lines_finished_total",
            "Batch lines recorded as finished, by task (or passthrough) and outcome.",
            ["task", "outcome"],
        ),
        upstream_calls=Counter(
            "textbatch_upstream_calls_total",
            "HTTP calls to upstreams, by upstream, status class and why the call was retried "
            "(none: it was not).",
            ["upstream", "status_class", "retry_reason"],
        ),
        upstream_duration=Histogram(
            "textbatch_upstream_call_duration_seconds",
            "Time from sending a call to an upstream to its whole answer (or its failure).",
            ["upstream"],
            buckets=_LATENCY_BUCKETS,
        ),
        upstream_in_flight=Gauge(
            "textbatch_upstream_calls_in_flight",
            "Calls out to an upstream now, summed over the live processes.",
            ["upstream"],
            multiprocess_mode="livesum",
        ),
        upstream_limit=Gauge(
            "textbatch_upstream_concurrency_limit",
            "The adaptive limit of calls in flight to an upstream, summed over the live "
            "processes (each process has its own).",
            ["upstream"],
            multiprocess_mode="livesum",
        ),
        capacity_waiters=Gauge(
            "textbatch_capacity_waiters",
            "Calls waiting for a slot of an upstream's shared capacity, by priority.",
            ["priority"],
            multiprocess_mode="livesum",
        ),
        tokens=Counter(
            "textbatch_tokens_total",
            "Tokens billed by upstreams for batch lines, by model and kind (input, output).",
            ["model", "kind"],
        ),
        cost=Counter(
            "textbatch_cost_usd_total",
            "Cost of batch lines in USD from the price table (batch discount applied), by model.",
            ["model"],
        ),
        ingest_bytes=Counter(
            "textbatch_ingest_bytes_total", "Bytes of batch input read (JSONL bodies and files)."
        ),
        ingest_lines=Counter(
            "textbatch_ingest_lines_total", "Lines of batch input read, accepted or not."
        ),
    )


# -- recording ---------------------------------------------------------------------------

# A metric's child per label values. prometheus_client's ``labels()`` checks the values
# and takes a lock on every call, over three times the cost of the increment itself,
# and a worker records several per line; label sets are bounded (see the module's
# docstring), so the children are kept.
_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def count_line_finished(task: str, outcome: str) -> None:
    _child(defined().lines_finished, task, outcome).inc()


def count_usage(model: str, input_tokens: int, output_tokens: int, cost_usd: float | None) -> None:
    """Tokens of one finished line, and its cost when the model is priced."""
    metrics = defined()
    if input_tokens:
        _child(metrics.tokens, model, "input").inc(input_tokens)
    if output_tokens:
        _child(metrics.tokens, model, "output").inc(output_tokens)
    if cost_usd:
        _child(metrics.cost, model).inc(cost_usd)


def count_upstream_call(
    upstream: str, status_class: str, retry_reason: str, seconds: float
) -> None:
    metrics = defined()
    _child(metrics.upstream_calls, upstream, status_class, retry_reason).inc()
    _child(metrics.upstream_duration, upstream).observe(seconds)


def upstream_in_flight(upstream: str, change: int) -> None:
    _child(defined().upstream_in_flight, upstream).inc(change)


def show_upstream_limit(upstream: str, limit: int) -> None:
    _child(defined().upstream_limit, upstream).set(limit)


def capacity_waiting(priority: str, change: int) -> None:
    _child(defined().capacity_waiters, priority).inc(change)


def count_ingest(lines: int, size: int) -> None:
    metrics = defined()
    if lines:
        metrics.ingest_lines.inc(lines)
    if size:
        metrics.ingest_bytes.inc(size)


def model_label(model: str, known: Callable[[str], bool]) -> str:
    """``model`` when ``known`` says the configuration names it, else ``other``.

    Pass-through lines name any model they like; a label per name would let one
    client grow the series without bound.
    """
    return model if model and known(model) else OTHER_MODEL

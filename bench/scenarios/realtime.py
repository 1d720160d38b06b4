"""Scenario 4, realtime under load: ``POST /v1/chat/completions`` latency, idle and busy.

Requests go one at a time, first with the service idle, then while a
scenario-2 batch keeps the worker's call slots full. Realtime calls run in the
API process with its own backend; batch lines run in the worker. Once the busy
samples are in, the batch is cancelled: it only had to be running.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context
from bench.scenarios.latency import settings_for
from bench.service import Service
from bench.workload import realtime_body

TITLE = "realtime under load"
P99_RATIO_LIMIT = 1.5
# The batch must be past its ramp-up before busy samples count.
SATURATION_WAIT_S = 1.0


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index]


def _latencies(client: httpx.Client, count: int) -> list[float]:
    body = realtime_body()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.post("/v1/chat/completions", json=body)
        samples.append(time.perf_counter() - start)
        response.raise_for_status()
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "requests": len(samples),
        "p50_ms": round(1000 * statistics.median(samples), 1),
        "p99_ms": round(1000 * percentile(samples, 0.99), 1),
        "max_ms": round(1000 * max(samples), 1),
    }


def _busy(
    ctx: Context, service: Service, client: httpx.Client
) -> tuple[list[float], dict[str, Any]]:
    path = ctx.batch_file(ctx.sizes.realtime_load_lines, ctx.sizes.text_chars)
    batch = service.submit_jsonl(client, path)
    deadline = time.monotonic() + 30
    while ctx.upstream.stats()["first_at"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(SATURATION_WAIT_S)
    samples = _latencies(client, ctx.sizes.realtime_requests)
    state = client.get(f"/v1/batches/{batch['id']}").json()
    stats = ctx.upstream.stats()
    if state["status"] not in {"completed", "failed", "cancelled", "expired"}:
        service.cancel(client, batch["id"], ctx.sizes.batch_timeout)
    counts = state["request_counts"]
    load = {
        "batch_still_running": state["status"] == "in_progress",
        "batch_lines_done": counts["completed"] + counts["failed"],
        "upstream_max_in_flight": stats["max_in_flight"],
    }
    return samples, load


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    settings = settings_for(ctx)
    with ctx.service("s4-realtime", settings) as service, service.client() as client:
        ctx.upstream.reset(sizes.latency)
        _latencies(client, 3)  # warm the API's connection to the upstream
        idle = _latencies(client, sizes.realtime_requests)
        ctx.upstream.reset(sizes.latency)
        busy, load = _busy(ctx, service, client)
    idle_summary, busy_summary = _summary(idle), _summary(busy)
    result = ScenarioResult("4", TITLE, settings=settings.as_record())
    result.settings.update(latency_s=sizes.latency, batch_lines=sizes.realtime_load_lines)
    result.figures = {
        "idle": idle_summary,
        "under_load": busy_summary,
        "load": load,
        "p99_ratio": ratio(busy_summary["p99_ms"], idle_summary["p99_ms"]),
        "p50_ratio": ratio(busy_summary["p50_ms"], idle_summary["p50_ms"]),
    }
    result.checks = [
        Check(
            "idle p50 / p99",
            idle_summary["p50_ms"],
            f"p99 {idle_summary['p99_ms']:g} ms",
            None,
            " ms",
        ),
        Check(
            "under load p50 / p99",
            busy_summary["p50_ms"],
            f"p99 {busy_summary['p99_ms']:g} ms",
            None,
            " ms",
        ),
        Check.at_most(
            "p99 under load / idle p99", result.figures["p99_ratio"], P99_RATIO_LIMIT, "x"
        ),
    ]
    if not load["batch_still_running"]:
        result.notes.append("the batch finished before the busy samples did; add batch lines")
    return result

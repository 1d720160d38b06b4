"""Scenario 3, overhead-bound: 20,000 lines with an upstream that answers at once.

With no latency to hide behind, lines/s measures what each line costs the
service. It runs twice: with one worker process, whose CPU time per line is
what bounds it (a worker is one Python process, so at most one core), and as
the README's "Scaling out" lays it out, one worker per CPU, with the same 64
calls in flight in all as the scripts. The second is held against the aiohttp
script. Around the one-worker run Redis is asked how many commands and round
trips it served and how many bytes the batch keeps; a further, smaller run
under a sampling profiler says where the worker's time goes.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from bench import procs, profile, redis_probe
from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context, baseline_run, capped_notes, failure_checks, service_run
from bench.service import Service, ServiceSettings

TITLE = "overhead-bound"
SHARE_OF_NAIVE = 0.7
# The plain aiohttp script, which renders and parses the same requests but records nothing.
SHARE_OF_AIOHTTP = 0.7
POLL_PROBES = 20


def settings_for(ctx: Context) -> ServiceSettings:
    return ServiceSettings(
        llm_concurrency=ctx.sizes.overhead_concurrency, chunk_size=64, worker_threads=4
    )


def per_cpu_settings(ctx: Context) -> ServiceSettings:
    """One worker per CPU, sharing the scripts' concurrency between them."""
    workers = max(1, os.cpu_count() or 1)
    share = max(1, ctx.sizes.overhead_concurrency // workers)
    return replace(settings_for(ctx), workers=workers, llm_concurrency=share)


def _timed_run(ctx: Context, service: Service, path: Any) -> dict[str, Any]:
    """A run with the CPU time its workers and its API spent per line."""
    pids = [worker.pid for worker in service.workers]
    for pid in pids:
        procs.wait_until_quiet(pid)
    before = [procs.cpu_ticks(pid) for pid in [*pids, service.api_pid]]
    run = service_run(ctx, service, path, 0.0)
    after = [procs.cpu_ticks(pid) for pid in [*pids, service.api_pid]]
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    lines = max(1, run["lines_measured"])
    spent = [(end - start) * tick_us / lines for start, end in zip(before, after, strict=True)]
    run["worker_cpu_us_per_line"] = round(sum(spent[:-1]), 1)
    run["api_cpu_us_per_line"] = round(spent[-1], 1)
    return run


def _poll_cost(ctx: Context, service: Service, batch_id: str) -> dict[str, float]:
    """Redis commands one status poll costs, to take the harness's polling out of the counts."""
    before = redis_probe.counters(ctx.redis_url)
    with service.client() as client:
        for _ in range(POLL_PROBES):
            client.get(f"/v1/batches/{batch_id}").raise_for_status()
    moved = redis_probe.delta(before, redis_probe.counters(ctx.redis_url))
    # The two INFO calls of the reading itself are not the polls'.
    moved.pop("info", None)
    return {name: count / POLL_PROBES for name, count in moved.items()}


def redis_figures(
    ctx: Context, service: Service, run: dict[str, Any], moved: dict[str, int]
) -> dict[str, Any]:
    """Per-line commands, round trips and stored bytes of a finished run."""
    lines = run["lines_measured"]
    per_poll = _poll_cost(ctx, service, run["batch_id"])
    polling = {name: cost * run["polls"] for name, cost in per_poll.items()}
    moved.pop("info", None)
    memory = redis_probe.batch_memory(ctx.redis_url, run["batch_id"])
    stored = sum(size for role, size in memory.items() if not role.startswith("_"))
    return {
        "round_trips_per_line": per_line_of(moved, polling, lines, "_round_trips"),
        "commands_per_line": per_line_of(moved, polling, lines, "_commands"),
        "commands_by_name_per_line": redis_probe.per_line(
            {k: v for k, v in moved.items() if not k.startswith("_")}, lines, polling
        ),
        "polls": run["polls"],
        "bytes_stored_per_line": round(stored / run["lines"], 1),
        "bytes_by_key": memory,
    }


def per_line_of(moved: dict[str, int], polling: dict[str, float], lines: int, name: str) -> float:
    return redis_probe.per_line({name: moved.get(name, 0)}, lines, polling).get(name, 0.0)


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    path = ctx.batch_file(sizes.overhead_lines, sizes.text_chars)
    settings = settings_for(ctx)
    with ctx.service("s3-overhead", settings) as service:
        before = redis_probe.counters(ctx.redis_url)
        one_worker = _timed_run(ctx, service, path)
        moved = redis_probe.delta(before, redis_probe.counters(ctx.redis_url))
        redis = redis_figures(ctx, service, one_worker, moved)
    spread = per_cpu_settings(ctx)
    with ctx.service("s3-overhead-per-cpu", spread) as service:
        textbatch = _timed_run(ctx, service, path)
    naive = baseline_run(ctx, "naive", path, 0.0, sizes.overhead_concurrency)
    sdk = baseline_run(ctx, "sdk", path, 0.0, sizes.overhead_concurrency)
    plain = baseline_run(ctx, "aiohttp", path, 0.0, sizes.overhead_concurrency)
    result = ScenarioResult("3", TITLE, settings=spread.as_record())
    result.settings.update(
        latency_s=0.0, lines=sizes.overhead_lines, one_worker=settings.as_record()
    )
    result.figures = {
        "textbatch": textbatch,
        "one_worker": one_worker,
        "one_worker_vs_aiohttp": ratio(one_worker["lines_per_s"], plain["lines_per_s"]),
        "naive": naive,
        "sdk": sdk,
        "aiohttp": plain,
        "vs_naive": ratio(textbatch["lines_per_s"], naive["lines_per_s"]),
        "vs_sdk": ratio(textbatch["lines_per_s"], sdk["lines_per_s"]),
        "vs_aiohttp": ratio(textbatch["lines_per_s"], plain["lines_per_s"]),
        "redis": redis,
    }
    if ctx.profile:
        profile_path = ctx.batch_file(sizes.profile_lines, sizes.text_chars)
        result.figures["profile"] = profile.profile_worker(ctx, settings, profile_path)
    else:
        result.figures["profile"] = {"skipped": "--no-profile"}
    result.checks = [
        Check.at_least(
            "textbatch / naive lines/s", result.figures["vs_naive"], SHARE_OF_NAIVE, "x"
        ),
        Check.at_least(
            f"textbatch ({spread.workers} workers, one per CPU) / aiohttp script lines/s",
            result.figures["vs_aiohttp"],
            SHARE_OF_AIOHTTP,
            "x",
        ),
        Check("textbatch lines/s", textbatch["lines_per_s"], "(reference)", None),
        Check(
            "one worker / aiohttp script lines/s",
            result.figures["one_worker_vs_aiohttp"],
            "(reference)",
            None,
        ),
        Check("one worker lines/s", one_worker["lines_per_s"], "(reference)", None),
        Check(
            "one worker: its CPU µs per line",
            one_worker["worker_cpu_us_per_line"],
            "(reference)",
            None,
        ),
        Check("naive script lines/s", naive["lines_per_s"], "(reference)", None),
        Check("openai SDK script lines/s", sdk["lines_per_s"], "(reference)", None),
        Check("aiohttp script lines/s", plain["lines_per_s"], "(reference)", None),
        Check("Redis round trips per line", redis["round_trips_per_line"], "(reference)", None),
        Check("Redis commands per line", redis["commands_per_line"], "(reference)", None),
        Check("Redis bytes stored per line", redis["bytes_stored_per_line"], "(reference)", None),
    ]
    runs = {
        "textbatch": textbatch,
        "one worker": one_worker,
        "naive": naive,
        "sdk": sdk,
        "aiohttp": plain,
    }
    result.checks.extend(failure_checks(runs))
    result.notes.extend(capped_notes(runs))
    return result

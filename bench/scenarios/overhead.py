"""Scenario 3, overhead-bound: 20,000 lines with an upstream that answers at once.

With no latency to hide behind, lines/s measures what each line costs the
service. Around the service's run Redis is asked how many commands and round
trips it served and how many bytes the batch keeps; a second, smaller run under
a sampling profiler says where the worker's time goes.
"""

from __future__ import annotations

from typing import Any

from bench import profile, redis_probe
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
        textbatch = service_run(ctx, service, path, 0.0)
        moved = redis_probe.delta(before, redis_probe.counters(ctx.redis_url))
        redis = redis_figures(ctx, service, textbatch, moved)
    naive = baseline_run(ctx, "naive", path, 0.0, sizes.overhead_concurrency)
    sdk = baseline_run(ctx, "sdk", path, 0.0, sizes.overhead_concurrency)
    plain = baseline_run(ctx, "aiohttp", path, 0.0, sizes.overhead_concurrency)
    result = ScenarioResult("3", TITLE, settings=settings.as_record())
    result.settings.update(latency_s=0.0, lines=sizes.overhead_lines)
    result.figures = {
        "textbatch": textbatch,
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
            "textbatch / aiohttp script lines/s",
            result.figures["vs_aiohttp"],
            SHARE_OF_AIOHTTP,
            "x",
        ),
        Check("textbatch lines/s", textbatch["lines_per_s"], "(reference)", None),
        Check("naive script lines/s", naive["lines_per_s"], "(reference)", None),
        Check("openai SDK script lines/s", sdk["lines_per_s"], "(reference)", None),
        Check("aiohttp script lines/s", plain["lines_per_s"], "(reference)", None),
        Check("Redis round trips per line", redis["round_trips_per_line"], "(reference)", None),
        Check("Redis commands per line", redis["commands_per_line"], "(reference)", None),
        Check("Redis bytes stored per line", redis["bytes_stored_per_line"], "(reference)", None),
    ]
    runs = {"textbatch": textbatch, "naive": naive, "sdk": sdk, "aiohttp": plain}
    result.checks.extend(failure_checks(runs))
    result.notes.extend(capped_notes(runs))
    return result

"""Scenario 2, latency-bound: 10,000 lines, upstream latency 200 ms, concurrency 128.

The limit is concurrency / latency lines per second; the service should reach
90 % of it and keep up with the naive script. The service's run is kept for
scenario 6, whose one-worker figure it is.
"""

from __future__ import annotations

from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context, baseline_run, capped_notes, failure_checks, service_run
from bench.service import ServiceSettings

TITLE = "latency-bound"
SHARE_OF_LIMIT = 0.9
SHARE_OF_NAIVE = 0.9
# The plain aiohttp script: what the upstream allows on this machine with the least client cost.
SHARE_OF_AIOHTTP = 0.95
SHARED_KEY = "latency_one_worker"


def settings_for(ctx: Context, workers: int = 1) -> ServiceSettings:
    # Enough lines held per worker (threads x chunk) to keep every call slot busy.
    return ServiceSettings(
        llm_concurrency=ctx.sizes.concurrency, chunk_size=64, worker_threads=8, workers=workers
    )


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    path = ctx.batch_file(sizes.latency_lines, sizes.text_chars)
    settings = settings_for(ctx)
    with ctx.service("s2-latency", settings) as service:
        textbatch = service_run(ctx, service, path, sizes.latency)
    ctx.shared_runs[SHARED_KEY] = textbatch
    naive = baseline_run(ctx, "naive", path, sizes.latency, sizes.concurrency)
    sdk = baseline_run(ctx, "sdk", path, sizes.latency, sizes.concurrency)
    plain = baseline_run(ctx, "aiohttp", path, sizes.latency, sizes.concurrency)
    limit = sizes.concurrency / sizes.latency
    result = ScenarioResult("2", TITLE, settings=settings.as_record())
    result.settings.update(latency_s=sizes.latency, lines=sizes.latency_lines)
    result.figures = {
        "limit_lines_per_s": limit,
        "textbatch": textbatch,
        "naive": naive,
        "sdk": sdk,
        "aiohttp": plain,
        "share_of_limit": ratio(textbatch["lines_per_s"], limit),
        "vs_naive": ratio(textbatch["lines_per_s"], naive["lines_per_s"]),
        "vs_sdk": ratio(textbatch["lines_per_s"], sdk["lines_per_s"]),
        "naive_share_of_limit": ratio(naive["lines_per_s"], limit),
        "sdk_share_of_limit": ratio(sdk["lines_per_s"], limit),
        "aiohttp_share_of_limit": ratio(plain["lines_per_s"], limit),
        "vs_aiohttp": ratio(textbatch["lines_per_s"], plain["lines_per_s"]),
    }
    result.checks = [
        Check.at_least(
            f"textbatch lines/s (limit {limit:g})",
            textbatch["lines_per_s"],
            SHARE_OF_LIMIT * limit,
        ),
        Check.at_least(
            "textbatch / naive lines/s", result.figures["vs_naive"], SHARE_OF_NAIVE, "x"
        ),
        Check.at_least(
            "textbatch / aiohttp script lines/s",
            result.figures["vs_aiohttp"],
            SHARE_OF_AIOHTTP,
            "x",
        ),
        Check("naive script lines/s", naive["lines_per_s"], "(reference)", None),
        Check("openai SDK script lines/s", sdk["lines_per_s"], "(reference)", None),
        Check("aiohttp script lines/s", plain["lines_per_s"], "(reference)", None),
    ]
    runs = {"textbatch": textbatch, "naive": naive, "sdk": sdk, "aiohttp": plain}
    result.checks.extend(failure_checks(runs))
    result.notes.extend(capped_notes(runs))
    return result

"""Scenario 5, output: stream ``GET /v1/batches/{id}/output`` of a 50,000-line batch.

The batch is run first (at no latency, the fastest the service goes); then the
output is streamed while the API's RSS is watched, and timed against reading
the same result values straight from Redis in one pipelined loop. Each side is
timed ``REPEATS`` times and the best of each compared, as in scenario 1.
"""

from __future__ import annotations

import time

from bench import redis_probe
from bench.procs import MIB, RssWatch
from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context, failure_checks, service_run
from bench.service import ServiceSettings

TITLE = "output"
RSS_LIMIT_MIB = 50
TIME_RATIO_LIMIT = 2.0
TEXT_CHARS = 300
REPEATS = 3


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    path = ctx.batch_file(sizes.output_lines, TEXT_CHARS)
    # Low per-process concurrency keeps the HTTP client's pool cheap; two workers share the load.
    settings = ServiceSettings(llm_concurrency=16, chunk_size=64, worker_threads=4, workers=2)
    with ctx.service("s5-output", settings) as service:
        # This run only fills the batch; it must finish, so no time cap.
        filled = service_run(ctx, service, path, 0.0, capped=False)
        stream_s = float("inf")
        with service.client() as client, RssWatch(service.api_pid) as watch:
            for _ in range(REPEATS):
                start = time.perf_counter()
                received = lines = 0
                url = f"/v1/batches/{filled['batch_id']}/output"
                with client.stream("GET", url) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        lines += chunk.count(b"\n")
                stream_s = min(stream_s, time.perf_counter() - start)
    # Redis is not flushed until the next scenario, so the results are still there.
    redis_s = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        redis_bytes = redis_probe.read_results_pipelined(
            ctx.redis_url, filled["batch_id"], filled["lines"]
        )
        redis_s = min(redis_s, time.perf_counter() - start)
    result = ScenarioResult("5", TITLE, settings=settings.as_record())
    result.settings.update(lines=sizes.output_lines)
    result.figures = {
        "batch_run": filled,
        "output_lines": lines,
        "output_mb": round(received / MIB, 1),
        "stream_s": round(stream_s, 3),
        "redis_pipelined_s": round(redis_s, 3),
        "redis_mb": round(redis_bytes / MIB, 1),
        "time_ratio": ratio(stream_s, redis_s),
        **watch.figures("api"),
    }
    result.checks = [
        Check.at_most("API RSS growth while streaming", watch.growth, RSS_LIMIT_MIB, " MiB"),
        Check.at_most(
            "stream time / pipelined Redis read",
            result.figures["time_ratio"],
            TIME_RATIO_LIMIT,
            "x",
        ),
        Check("output lines streamed", lines, f"= {filled['lines']}", lines == filled["lines"]),
        *failure_checks({"textbatch": filled}),
    ]
    return result

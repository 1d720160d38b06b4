"""Scenario 8, a 1,000,000-line batch: it completes, the API's memory stays flat, Redis's grows
by a measured amount per line.

The upstream answers at once; two workers run the lines. The API's RSS is
watched from before the submission until the batch has ended (the polling
included), and Redis's ``used_memory`` is read before the submission and after
the end, so the bytes per line are what a finished batch keeps until its
retention ends.
"""

from __future__ import annotations

import time

import redis

from bench.procs import MIB, RssWatch
from bench.redis_probe import batch_memory
from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context
from bench.service import ServiceSettings

TITLE = "1,000,000-line batch"
RSS_LIMIT_MIB = 100
TEXT_CHARS = 120


def _used_memory(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("memory")["used_memory"])


def run(ctx: Context) -> ScenarioResult:
    lines = ctx.sizes.million_lines
    path = ctx.batch_file(lines, TEXT_CHARS)
    size = path.stat().st_size
    settings = ServiceSettings(
        llm_concurrency=64,
        chunk_size=64,
        workers=2,
        extra={"max_lines": str(lines), "max_body_bytes": str(size + 64 * MIB)},
    )
    ctx.upstream.reset(0.0)
    with ctx.service("s8-million", settings) as service, service.client(timeout=900) as client:
        before = _used_memory(ctx.redis_url)
        with RssWatch(service.api_pid) as watch:
            start = time.perf_counter()
            batch = service.submit_jsonl(client, path)
            submitted = time.perf_counter() - start
            done = service.wait_done(client, batch["id"], timeout=ctx.sizes.million_timeout)
            elapsed = time.perf_counter() - start
        after = _used_memory(ctx.redis_url)
        keys = batch_memory(ctx.redis_url, batch["id"])
    counts = done["request_counts"]
    result = ScenarioResult("8", TITLE, settings=settings.as_record())
    result.figures = {
        "lines": lines,
        "jsonl_mb": round(size / MIB, 1),
        "submit_s": round(submitted, 2),
        "total_s": round(elapsed, 1),
        "lines_per_s": round(lines / elapsed, 1),
        "status": done["status"],
        "request_counts": counts,
        **watch.figures("api"),
        "redis_bytes_per_line": round((after - before) / lines, 1),
        "redis_key_bytes_per_line": {
            role: round(size_ / lines, 1) for role, size_ in keys.items() if role != "_used_memory"
        },
    }
    result.checks = [
        Check("completed lines", counts["completed"], f"{lines}", counts["completed"] == lines),
        Check.at_most(
            "API RSS growth", result.figures["api_rss_growth_mib"], RSS_LIMIT_MIB, " MiB"
        ),
        Check("Redis bytes per line", result.figures["redis_bytes_per_line"], "", None, " B"),
        Check("lines/s end to end", result.figures["lines_per_s"], "", None),
        Check("submission time", ratio(submitted, 1.0), "", None, " s"),
    ]
    return result

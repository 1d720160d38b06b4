"""The benchmark's Redis: where it is, and what it says about the work done on it.

By default the benchmark starts its own embedded Valkey, as ``textbatch serve``
does (append-only file, fsync every second): on a shared machine other clients
of a common Redis would show up in the server-wide command counts, and a test
run flushing it would lose a batch mid-measurement. ``--redis-url`` points it
at an existing Redis instead; that database is flushed between scenarios. Command counts
come from ``INFO commandstats`` (commands a script runs count too), round trips
from ``INFO stats`` ``total_reads_processed`` (one per batch of bytes read from
a client, so a pipeline counts once), stored bytes from ``MEMORY USAGE``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from service.redis_server import EmbeddedValkey
from service.store import keys

OUTPUT_PAGE = 1000


def _version(url: str) -> str:
    with redis.Redis.from_url(url) as client:
        server: dict[str, Any] = client.info("server")
    name = "valkey" if "valkey_version" in server else "redis"
    return f"{name} {server.get(f'{name}_version', server.get('redis_version', '?'))}"


@contextlib.contextmanager
def bench_redis(url: str | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(url, what)`` of an emptied Redis database: ``url``'s, or a private Valkey."""
    if url is not None:
        flush(url)
        yield url, f"{_version(url)} at {url}"
        return
    with tempfile.TemporaryDirectory(prefix="textbatch-bench-valkey-") as data_dir:
        server = EmbeddedValkey(Path(data_dir))
        embedded = server.start()
        try:
            yield embedded, f"embedded {_version(embedded)} (appendonly, fsync every second)"
        finally:
            server.stop()


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()


def counters(url: str) -> dict[str, int]:
    """Commands per name, plus ``_round_trips`` and ``_commands`` for the whole server."""
    with redis.Redis.from_url(url) as client:
        stats: dict[str, Any] = client.info("commandstats")
        totals: dict[str, Any] = client.info("stats")
    counts = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    counts["_round_trips"] = int(totals.get("total_reads_processed", 0))
    counts["_commands"] = int(totals.get("total_commands_processed", 0))
    return counts


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What moved between two ``counters()`` readings."""
    moved = {name: after[name] - before.get(name, 0) for name in after}
    return {name: count for name, count in moved.items() if count}


def per_line(
    moved: dict[str, int], lines: int, minus: dict[str, float] | None = None
) -> dict[str, float]:
    """Counts divided by ``lines``, after taking away ``minus`` (e.g. the polling's share)."""
    minus = minus or {}
    return {
        name: round(max(0.0, count - minus.get(name, 0.0)) / lines, 3)
        for name, count in sorted(moved.items(), key=lambda item: -item[1])
    }


def batch_memory(url: str, batch_id: str) -> dict[str, int]:
    """``MEMORY USAGE`` of each of the batch's keys, by key role."""
    roles = {
        "batch": keys.batch(batch_id),
        "lines": keys.batch_lines(batch_id),
        "results": keys.batch_results(batch_id),
        "usage": keys.batch_model_usage(batch_id),
        "failed": keys.batch_failed_lines(batch_id),
    }
    with redis.Redis.from_url(url) as client:
        sizes = {role: client.memory_usage(key, samples=0) for role, key in roles.items()}
        used = int(client.info("memory")["used_memory"])
    found = {role: int(size) for role, size in sizes.items() if size}
    found["_used_memory"] = used
    return found


def read_results_pipelined(url: str, batch_id: str, total: int) -> int:
    """Read every result of a batch with pipelined HMGET pages; returns the bytes read."""
    key = keys.batch_results(batch_id)
    size = 0
    with redis.Redis.from_url(url) as client:
        for start in range(0, total, OUTPUT_PAGE):
            stop = min(start + OUTPUT_PAGE, total)
            with client.pipeline(transaction=False) as pipe:
                pipe.hmget(key, list(range(start, stop)))
                (values,) = pipe.execute()
            page = b"\n".join(value for value in values if value is not None)
            size += len(page) + 1
    return size

"""Refuses a Redis that would evict data: batches, results and files must never vanish.

A Redis with ``maxmemory`` set and an evicting ``maxmemory-policy`` (``allkeys-lru``,
``volatile-ttl``…) drops keys when full. For a cache that is a feature; here it
would silently lose acknowledged batches, results or an idempotency record (and
so run a batch twice). ``noeviction`` makes a full Redis refuse writes instead,
which the service answers with a 503 and retries. The policy is read from
``INFO memory``, which managed services that disable ``CONFIG`` still answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from redis import exceptions as redis_errors

SAFE_POLICY = "noeviction"


@dataclass(frozen=True, slots=True)
class EvictionVerdict:
    """What the start-up check concluded; ``refuse`` and ``warn`` are messages or ``None``."""

    policy: str | None
    maxmemory: int
    refuse: str | None = None
    warn: str | None = None


def judge_memory_info(info: dict[str, Any]) -> EvictionVerdict:
    """The verdict on a server's ``INFO memory`` answer."""
    policy = info.get("maxmemory_policy")
    maxmemory = int(info.get("maxmemory") or 0)
    if policy is None or str(policy) == SAFE_POLICY:
        return EvictionVerdict(None if policy is None else str(policy), maxmemory)
    policy = str(policy)
    if maxmemory > 0:
        return EvictionVerdict(
            policy,
            maxmemory,
            refuse=(
                f"Redis has maxmemory-policy {policy} with maxmemory {maxmemory} bytes: "
                "when full it would evict batches, results and files. "
                f"Set maxmemory-policy {SAFE_POLICY} (a full Redis then refuses writes, "
                "which textbatch answers with 503 and retries)."
            ),
        )
    # No limit yet, so nothing is evicted today; a limit set later would start evicting.
    return EvictionVerdict(
        policy,
        maxmemory,
        warn=(
            f"Redis has maxmemory-policy {policy}; it evicts nothing while maxmemory is 0, "
            f"but would evict batches and results once a limit is set. "
            f"Set maxmemory-policy {SAFE_POLICY}."
        ),
    )


def check_eviction_policy(redis_url: str, timeout: float = 5.0) -> EvictionVerdict | None:
    """Ask the server; ``None`` when it cannot be asked now (it is waited for later)."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        info = client.info("memory")
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError):
        return None
    finally:
        client.close()
    return judge_memory_info(info)

"""A closed-loop HTTP load for gateway figures: N clients each sending one request after another.

aiohttp over keep-alive connections, one request body encoded once; what is
measured is requests per second and each request's latency, end to end.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import orjson


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def _client(
    session: aiohttp.ClientSession,
    url: str,
    payload: bytes,
    deadline: float,
    samples: list[float],
    errors: list[int],
) -> None:
    while time.monotonic() < deadline:
        start = time.perf_counter()
        async with session.post(url, data=payload) as response:
            await response.read()
            if response.status != 200:
                errors.append(response.status)
                continue
        samples.append(time.perf_counter() - start)


async def _run(
    url: str, headers: dict[str, str], body: dict[str, Any], clients: int, seconds: float
) -> dict[str, Any]:
    payload = orjson.dumps(body)
    samples: list[float] = []
    errors: list[int] = []
    connector = aiohttp.TCPConnector(limit=clients)
    headers = {"content-type": "application/json", **headers}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        start = time.perf_counter()
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(session, url, payload, deadline, samples, errors) for _ in range(clients))
        )
        elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "requests": len(samples),
        "errors": len(errors),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(samples), 2) if samples else None,
        "p99_ms": round(1000 * percentile(samples, 0.99), 2) if samples else None,
    }


def closed_loop(
    url: str, headers: dict[str, str], body: dict[str, Any], clients: int, seconds: float
) -> dict[str, Any]:
    """Requests per second and latency percentiles of ``clients`` looping for ``seconds``."""
    return asyncio.run(_run(url, headers, body, clients, seconds))

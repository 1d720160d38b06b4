"""Drives the benchmark upstream from the harness: start it, reset it, read its counters.

Also measures what the upstream can serve alone, with a bare asyncio client
sending one pre-encoded request over keep-alive connections, so a report can
show the upstream was never the limit.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import procs
from bench.workload import chat_payload, realtime_body


@dataclass
class UpstreamProcess:
    """``python -m bench.upstream`` in its own process."""

    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, log: Path, latency: float = 0.0) -> UpstreamProcess:
        port = procs.free_port()
        args = ["bench.upstream", "--port", str(port), "--latency", str(latency)]
        process = procs.start_python(args, procs.base_env(), log)
        upstream = cls(port, process)
        procs.wait_http_ok(f"{upstream.base_url}/models", process, log=log)
        return upstream

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self, latency: float) -> None:
        """Clear the counters and set the latency for the next run."""
        url = f"http://127.0.0.1:{self.port}/_bench/reset"
        httpx.post(url, params={"latency": latency}, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"http://127.0.0.1:{self.port}/_bench/stats", timeout=5)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def stop(self) -> None:
        procs.stop([self.process])


def _request_bytes(port: int) -> bytes:
    body = orjson.dumps(chat_payload(realtime_body(), "bench-model"))
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(port: int, request: bytes, deadline: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    served = 0
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            served += 1
    finally:
        writer.close()
    return served


async def _hammer(port: int, connections: int, seconds: float) -> int:
    request = _request_bytes(port)
    deadline = time.monotonic() + seconds
    counts = await asyncio.gather(
        *(_connection(port, request, deadline) for _ in range(connections))
    )
    return sum(counts)


def measure_capacity(
    upstream: UpstreamProcess, latency: float, connections: int, seconds: float
) -> dict[str, Any]:
    """Calls per second the upstream serves to a lean client at ``latency``."""
    upstream.reset(latency)
    start = time.perf_counter()
    served = asyncio.run(_hammer(upstream.port, connections, seconds))
    elapsed = time.perf_counter() - start
    return {
        "latency_s": latency,
        "connections": connections,
        "calls": served,
        "calls_per_s": round(served / elapsed, 1),
    }

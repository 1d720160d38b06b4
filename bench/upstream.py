"""A lean OpenAI-compatible upstream for benchmarks, run in its own process.

The test stand-in (Starlette under uvicorn) records every call and can fail on
demand; a benchmark needs none of that, only an upstream that is never the
bottleneck. This one speaks just enough HTTP/1.1 over a bare asyncio protocol
(keep-alive, ``Content-Length`` bodies), answers chat completions with the test
stand-in's schema-valid answers after a fixed latency, and keeps the counters a
benchmark reads: how many calls, and the wall time of the first and the last.

Run it with ``python -m bench.upstream --port P --latency L``. ``GET
/_bench/stats`` reads the counters; ``POST /_bench/reset?latency=L`` clears
them and sets the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from standins.answers import chat_content, message_text, word_count

MAX_HEAD_BYTES = 64 * 1024


@dataclass(slots=True)
class UpstreamStats:
    """What the benchmark reads back: calls served, the first and last arrival, peak in flight."""

    calls: int = 0
    first_at: float | None = None
    last_at: float | None = None
    in_flight: int = 0
    max_in_flight: int = 0


class BenchUpstream:
    """The request handling, apart from the wire: route, answer, count."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.stats = UpstreamStats()

    def reset(self, latency: float | None) -> None:
        if latency is not None:
            self.latency = latency
        in_flight = self.stats.in_flight
        self.stats = UpstreamStats(in_flight=in_flight)

    def route(self, method: str, target: str, body: bytes) -> tuple[int, bytes, bool]:
        """``(status, body, delayed)`` for one request; delayed answers wait ``latency``."""
        url = urlsplit(target)
        if method == "POST" and url.path == "/v1/chat/completions":
            return 200, self._chat(body), True
        if method == "GET" and url.path == "/_bench/stats":
            return 200, orjson.dumps(asdict(self.stats)), False
        if method == "POST" and url.path == "/_bench/reset":
            latency = parse_qs(url.query).get("latency")
            self.reset(float(latency[0]) if latency else None)
            return 200, b'{"ok":true}', False
        if method == "GET" and url.path == "/v1/models":
            return 200, b'{"object":"list","data":[{"id":"bench-model","object":"model"}]}', False
        return 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}', False

    def _chat(self, raw: bytes) -> bytes:
        now = time.time()
        stats = self.stats
        stats.calls += 1
        if stats.first_at is None:
            stats.first_at = now
        stats.last_at = now
        body: dict[str, Any] = orjson.loads(raw)
        content = chat_content(body)
        prompt = word_count(message_text(body.get("messages")))
        completion = word_count(content)
        return orjson.dumps(
            {
                "id": f"chatcmpl-bench{stats.calls:08d}",
                "object": "chat.completion",
                "created": int(now),
                "model": body.get("model", "bench-model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 411: b"Length Required"}


def _response(status: int, body: bytes, close: bool) -> bytes:
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        _REASONS.get(status, b"Error"),
        len(body),
    )
    if close:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: split the byte stream into requests and answer each."""

    def __init__(self, upstream: BenchUpstream) -> None:
        self.upstream = upstream
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    self._send(400, b"{}", close=True)
                return
            method, target, length, close, chunked = _parse_head(bytes(self.buffer[:head_end]))
            if chunked:
                # Every client the benchmark drives sends a length; refusing keeps this lean.
                self._send(411, b"{}", close=True)
                return
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body = bytes(self.buffer[head_end + 4 : end])
            del self.buffer[:end]
            self._answer(method, target, body, close)

    def _answer(self, method: str, target: str, body: bytes, close: bool) -> None:
        try:
            status, payload, delayed = self.upstream.route(method, target, body)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            status, payload, delayed = 400, b'{"error":{"message":"bad request"}}', False
        latency = self.upstream.latency if delayed else 0.0
        if not delayed:
            self._send(status, payload, close)
            return
        stats = self.upstream.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        loop = asyncio.get_running_loop()
        if latency > 0:
            loop.call_later(latency, self._finish, stats, status, payload, close)
        else:
            self._finish(stats, status, payload, close)

    def _finish(self, stats: UpstreamStats, status: int, payload: bytes, close: bool) -> None:
        stats.in_flight -= 1
        self._send(status, payload, close)

    def _send(self, status: int, payload: bytes, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(_response(status, payload, close))
        if close:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _parse_head(head: bytes) -> tuple[str, str, int, bool, bool]:
    """Method, target, body length, whether to close, whether the body is chunked."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    length, close, chunked = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value.strip().lower() == "close"
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
    return method, target, length, close, chunked


async def serve(host: str, port: int, latency: float) -> None:
    """Serve until SIGTERM or SIGINT."""
    upstream = BenchUpstream(latency)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(upstream), host, port, reuse_address=True, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"bench upstream listening on http://{host}:{port}/v1 (pid {os.getpid()})", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.latency))


if __name__ == "__main__":
    main()

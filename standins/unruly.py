"""A small OpenAI-compatible server on loopback whose answers follow a script, for client tests.

``UnrulyUpstream`` runs an aiohttp app in a thread. A test queues answers with
``script(...)`` (each used once, in order; with none queued the server answers a
plain chat completion) or sets ``rules`` (an answer for any request holding a
marker), and reads back every request it got in ``calls``. An answer is a status
and a JSON body, or one of the hostile habits: a redirect, a body dripped one byte
at a time, a body of many megabytes written piece by piece.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Scripted:
    """One answer: ``status`` and ``body``, plus an optional habit."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds between single bytes of the body, after the headers went out at once.
    drip_seconds: float = 0.0
    # Seconds to wait before answering at all.
    delay_seconds: float = 0.0
    # Bytes of filler written after the body's opening, in pieces (no Content-Length).
    huge_bytes: int = 0


def completion(
    content: Any = "ok",
    *,
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    **message: Any,
) -> dict[str, Any]:
    """A chat completion body with one choice."""
    return {
        "id": "chatcmpl-unruly",
        "object": "chat.completion",
        "model": "unruly-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class UnrulyUpstream:
    """Answers from a script; records what it was sent and how much of a huge body got out."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        self.bytes_written = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._script: deque[Scripted] = deque()
        # Answers for any request whose raw body holds the key; they are used every time.
        self.rules: dict[str, Scripted] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *answers: Scripted) -> None:
        self._script.extend(answers)

    def reset(self) -> None:
        self._script.clear()
        self.rules.clear()
        self.calls.clear()
        self.authorizations.clear()
        self.bytes_written = 0
        self.most_in_flight = 0

    def __enter__(self) -> UnrulyUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await self._answer_one(request)
        finally:
            self.in_flight -= 1

    async def _answer_one(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        self.calls.append({"method": request.method, "path": request.path, "body": body})
        self.authorizations.append(request.headers.get("Authorization"))
        ruled = [answer for marker, answer in self.rules.items() if marker.encode() in raw]
        if ruled:
            answer = ruled[0]
        else:
            answer = self._script.popleft() if self._script else Scripted(body=completion())
        payload = orjson.dumps(answer.body) if answer.body is not None else b""
        if answer.delay_seconds:
            await asyncio.sleep(answer.delay_seconds)
        if answer.huge_bytes:
            return await self._huge(request, answer, payload)
        if answer.drip_seconds:
            return await self._drip(request, answer, payload)
        return web.Response(
            status=answer.status,
            body=payload,
            headers={"Content-Type": "application/json", **answer.headers},
        )

    async def _drip(
        self, request: web.Request, answer: Scripted, payload: bytes
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_type = "application/json"
        await response.prepare(request)
        try:
            for index in range(len(payload)):
                await response.write(payload[index : index + 1])
                await asyncio.sleep(answer.drip_seconds)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def _huge(
        self, request: web.Request, answer: Scripted, payload: bytes
    ) -> web.StreamResponse:
        # A completion whose content is ``huge_bytes`` of filler, written in pieces.
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_type = "application/json"
        await response.prepare(request)
        head, _, tail = payload.partition(b'"FILL"')
        piece = b"x" * 65536
        try:
            await response.write(head + b'"')
            written = 0
            while written < answer.huge_bytes:
                await response.write(piece)
                written += len(piece)
                self.bytes_written = written
            await response.write(b'"' + tail)
        except (ConnectionError, RuntimeError):
            pass
        return response

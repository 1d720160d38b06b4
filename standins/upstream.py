"""A real OpenAI-compatible HTTP server on loopback, for tests and benchmarks.

``StandinUpstream`` runs in a background thread, answers deterministically from
the request (``standins.answers``), fails on demand (``standins.faults``)
and records every call so a test can check what was sent. It also counts the
calls in flight and, given a ``capacity``, answers 429 to calls beyond it, as an
overloaded server does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standins import answers
from standins.faults import (
    FAULTS,
    DroppedConnection,
    Fault,
    FaultPlan,
    hide_dropped_connections,
)
from standins.newer_endpoints import cached_tokens, moderation_payload, responses_payload

_HOUR = 3600.0
_DISCONNECT_POLL_SECONDS = 0.05

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class RecordedCall:
    """One request as the stand-in saw it; the Authorization value is left out."""

    at: float
    method: str
    path: str
    body: Any
    text: str
    headers: dict[str, str]
    has_auth: bool
    auth_ok: bool


class StandinUpstream:
    """Serves ``/v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``,
    ``/v1/responses``, ``/v1/moderations`` and ``/v1/models``.

    Use it as a context manager, or ``start()`` and ``stop()`` it. Random 429
    faults carry ``Retry-After: fault_retry_after`` when that is set.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        fault_rates: dict[str, float] | None = None,
        seed: int = 0,
        slow_seconds: float = 1.0,
        port: int = 0,
        fault_retry_after: float | None = None,
        capacity: int | None = None,
    ) -> None:
        self.latency = latency
        self.api_key = api_key
        self.capacity = capacity
        self.faults = FaultPlan(
            fault_rates,
            seed=seed,
            slow_seconds=slow_seconds,
            rate_limit_retry_after=fault_retry_after,
        )
        self.authorizations: list[str | None] = []
        self._port = port
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []
        self._sequence = 0
        self._in_flight = 0
        self._concurrency_samples: list[tuple[float, int]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._counted(self._chat), methods=["POST"]),
                Route("/v1/completions", self._counted(self._completion), methods=["POST"]),
                Route("/v1/embeddings", self._counted(self._embeddings), methods=["POST"]),
                Route("/v1/responses", self._counted(self._responses), methods=["POST"]),
                Route("/v1/moderations", self._counted(self._moderations), methods=["POST"]),
                Route("/v1/models", self._counted(self._models), methods=["GET"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._calls)

    def calls_matching(self, substring: str) -> list[RecordedCall]:
        return [call for call in self.calls if substring in call.text]

    @property
    def in_flight(self) -> int:
        """Calls being handled now."""
        with self._lock:
            return self._in_flight

    @property
    def concurrency_samples(self) -> list[tuple[float, int]]:
        """``(monotonic time, calls in flight)`` as each call arrived, itself included."""
        with self._lock:
            return list(self._concurrency_samples)

    @property
    def max_in_flight(self) -> int:
        """The most calls in flight at once since the start or the last ``reset()``."""
        return max((count for _, count in self.concurrency_samples), default=0)

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self.authorizations.clear()
            # Calls still being handled stay counted; only the history goes.
            self._concurrency_samples.clear()
        self.faults.reset()

    def set_latency(self, seconds: float) -> None:
        self.latency = seconds

    def set_capacity(self, calls: int | None) -> None:
        """Answer 429 to calls beyond ``calls`` in flight; ``None`` takes any number."""
        self.capacity = calls

    def start(self) -> StandinUpstream:
        # Binding here, not in uvicorn, gives a free port with no race for it.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self._port))
        self._port = self._socket.getsockname()[1]
        hide_dropped_connections()
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            log_config=None,
            lifespan="off",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._stop_requested = False
        self._loop = self._stopping = None
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stand-in upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        # Wake handlers parked in [[timeout]] or [[slow]] so shutdown need not wait.
        self._stop_requested = True
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> StandinUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _counted(self, handler: Handler) -> Handler:
        """``handler``, counting the calls in flight and refusing those beyond capacity."""

        async def counted(request: Request) -> Response:
            with self._lock:
                self._in_flight += 1
                request.state.arrived_as = self._in_flight
                self._concurrency_samples.append((time.monotonic(), self._in_flight))
            try:
                return await handler(request)
            finally:
                with self._lock:
                    self._in_flight -= 1

        return counted

    async def _chat(self, request: Request) -> Response:
        body, fault, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        messages = body.get("messages")
        content = answers.chat_content(body, wrong_schema=fault.wrong_schema)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }
        prompt_words = answers.word_count(answers.message_text(messages))
        return self._answer(body, "chat.completion", [choice], prompt_words, content)

    async def _completion(self, request: Request) -> Response:
        body, _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        text = answers.request_text(body)
        content = "echo: " + text[:50]
        choice = {"text": content, "index": 0, "logprobs": None, "finish_reason": "stop"}
        return self._answer(body, "text_completion", [choice], answers.word_count(text), content)

    async def _embeddings(self, request: Request) -> Response:
        body, _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        raw = body.get("input", "")
        inputs = [str(item) for item in raw] if isinstance(raw, list) else [str(raw)]
        words = sum(answers.word_count(text) for text in inputs)
        data = [
            {"object": "embedding", "index": index, "embedding": answers.embedding(text)}
            for index, text in enumerate(inputs)
        ]
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model", "standin-model"),
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }
        return self._json(200, payload, self._next_id()[1])

    async def _responses(self, request: Request) -> Response:
        body, _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        sequence, request_id = self._next_id()
        return self._json(200, responses_payload(body, sequence), request_id)

    async def _moderations(self, request: Request) -> Response:
        body, _, refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        sequence, request_id = self._next_id()
        return self._json(200, moderation_payload(body, sequence), request_id)

    async def _models(self, request: Request) -> Response:
        _, _, refusal = await self._admit(request, has_body=False)
        if refusal is not None:
            return refusal
        model = {"id": "standin-model", "object": "model", "created": 0, "owned_by": "standin"}
        return self._json(200, {"object": "list", "data": [model]}, self._next_id()[1])

    async def _admit(
        self, request: Request, *, has_body: bool = True
    ) -> tuple[dict[str, Any], Fault, Response | None]:
        """Record the call, check key and body, apply its fault; a refusal is returned."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        raw = await request.body() if has_body else b""
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        authorization = request.headers.get("authorization")
        auth_ok = self.api_key is None or authorization == f"Bearer {self.api_key}"
        text = answers.request_text(body) if isinstance(body, dict) else ""
        call = RecordedCall(
            at=time.monotonic(),
            method=request.method,
            path=request.url.path,
            body=body,
            text=text,
            headers={k: v for k, v in request.headers.items() if k != "authorization"},
            has_auth=authorization is not None,
            auth_ok=auth_ok,
        )
        with self._lock:
            self._calls.append(call)
            self.authorizations.append(authorization)
        no_fault = Fault()
        if not auth_ok:
            # As hosted APIs do, the refusal quotes the key it was given (here whole).
            presented = (authorization or "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {presented}."
            return {}, no_fault, _error(401, message, "invalid_api_key")
        if not isinstance(body, dict):
            return {}, no_fault, _error(400, "The request body is not JSON.", "invalid_json")
        if self.capacity is not None and request.state.arrived_as > self.capacity:
            # An overloaded server refuses at once rather than after the usual latency.
            message = "stand-in over capacity: too many calls in flight"
            headers = {"Retry-After": "0"}
            return {}, no_fault, _error(429, message, "rate_limit_exceeded", headers)
        # A re-ask changes the system message, not the user's; key faults on the latter.
        fault = (
            self.faults.decide(answers.fault_text(body) if isinstance(body, dict) else text)
            if has_body
            else no_fault
        )
        await self._pause(self.latency + fault.slow)
        return body, fault, await self._fault_response(request, fault)

    async def _fault_response(self, request: Request, fault: Fault) -> Response | None:
        if fault.hang:
            await self._hang(request)
            return _error(504, "the call hung until its caller or the stand-in gave up", "timeout")
        if fault.status is not None:
            message = f"stand-in fault: HTTP {fault.status}"
            return _error(fault.status, message, "standin_fault", fault.headers)
        if fault.drop:
            return DroppedConnection()
        if fault.bad_json:
            return Response(b"<html>upstream hiccup</html>", 200, media_type="text/html")
        return None

    async def _hang(self, request: Request) -> None:
        """Give no answer until the caller gives up, the stand-in stops, or an hour passes."""
        # Ending with the caller keeps a hung call from counting as in flight forever.
        deadline = time.monotonic() + _HOUR
        while not self._stop_requested and time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            await self._pause(_DISCONNECT_POLL_SECONDS)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the stand-in is stopping."""
        if seconds <= 0:
            return
        if self._stopping is None:
            self._stopping = asyncio.Event()
        if self._stop_requested:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _answer(
        self, body: dict[str, Any], obj: str, choices: list[Any], prompt_words: int, content: str
    ) -> Response:
        completion_words = answers.word_count(content)
        sequence, request_id = self._next_id()
        payload = {
            "id": f"chatcmpl-{sequence:08d}"
            if obj == "chat.completion"
            else f"cmpl-{sequence:08d}",
            "object": obj,
            "created": int(time.time()),
            "model": body.get("model", "standin-model"),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_words,
                "completion_tokens": completion_words,
                "total_tokens": prompt_words + completion_words,
            },
        }
        if body.get("prompt_cache_key"):
            cached = cached_tokens(body, prompt_words)
            payload["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
        return self._json(200, payload, request_id)

    def _next_id(self) -> tuple[int, str]:
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        return sequence, f"req-{sequence:08d}"

    @staticmethod
    def _json(status: int, payload: Any, request_id: str) -> Response:
        return Response(
            orjson.dumps(payload),
            status,
            headers={"x-request-id": request_id},
            media_type="application/json",
        )


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Response:
    kind = "invalid_request_error" if 400 <= status < 500 and status != 429 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the stand-in OpenAI-compatible upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="KIND=RATE", help=f"one of {FAULTS}"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--capacity", type=int, default=None, help="answer 429 beyond this many calls in flight"
    )
    args = parser.parse_args()
    rates = {kind: float(rate) for kind, _, rate in (f.partition("=") for f in args.fault)}
    upstream = StandinUpstream(
        latency=args.latency,
        api_key=args.api_key,
        fault_rates=rates,
        seed=args.seed,
        capacity=args.capacity,
    )
    hide_dropped_connections()
    uvicorn.run(upstream.app, host=args.host, port=args.port, lifespan="off", ws="none")


if __name__ == "__main__":
    main()

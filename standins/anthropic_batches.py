"""A stand-in for Anthropic's Message Batches API on loopback, for tests of the native lane.

``StandinAnthropicBatches`` serves ``/v1/messages/batches`` as Anthropic documents it:
create, retrieve, list (newest first, ``after_id``/``before_id``/``limit``), cancel, and
the results JSONL at the ``results_url`` a batch hands out once it has ended. Every call
needs ``x-api-key`` and ``anthropic-version``. Each request is answered with a Messages
answer computed from its params by ``standins.answers``: a forced tool (``tool_choice``
naming a tool) gets a ``tool_use`` block whose input is the answer to the tool's
``input_schema``, so task prompts get right answers; otherwise a text block.

A request is processed ``processing_seconds`` after its batch was created. Directives in
its text drive the other result types: ``[[errored:TYPE]]`` (e.g. ``overloaded_error``)
makes it errored; ``[[pending]]`` keeps it processing until its batch is cancelled (it is
then ``canceled``) or expires (``expired``; see ``expire``). As Anthropic does, params
are checked when a request is processed, so a bad one is an errored result.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from standins.anthropic_answers import batch_problem, request_result

VERSION = "2023-06-01"
_PENDING = "[[pending]]"


@dataclass
class _Batch:
    id: str
    created_at: datetime
    expires_at: datetime
    requests: list[dict[str, Any]]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None


class StandinAnthropicBatches:
    """Anthropic's Message Batches API, answering from ``standins.answers``; see the module."""

    def __init__(self, *, api_key: str = "sk-ant-standin", processing_seconds: float = 0.0) -> None:
        self.api_key = api_key
        self.processing_seconds = processing_seconds
        # Hand out results_url on another origin, to test that clients refuse it.
        self.results_origin: str | None = None
        self.calls: list[dict[str, Any]] = []
        self._batches: dict[str, _Batch] = {}
        self._lock = threading.Lock()
        self._sequence = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def batch_ids(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    def requests_of(self, batch_id: str) -> list[dict[str, Any]]:
        """The requests (``custom_id`` and ``params``) the batch was created with."""
        with self._lock:
            return list(self._batches[batch_id].requests)

    def expire(self, batch_id: str) -> None:
        """Let the batch's window run out now: its unprocessed requests expire."""
        with self._lock:
            self._batches[batch_id].expires_at = datetime.now(UTC)

    def __enter__(self) -> StandinAnthropicBatches:
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
        app = web.Application(client_max_size=300 * 1024 * 1024, middlewares=[self._admit])
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches", self._list)
        app.router.add_get("/v1/messages/batches/{id}", self._retrieve)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self._cancel)
        app.router.add_get("/v1/messages/batches/{id}/results", self._results)
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

    @web.middleware
    async def _admit(self, request: web.Request, handler: Any) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "x-api-key"}
        key_ok = request.headers.get("x-api-key") == self.api_key
        with self._lock:
            self.calls.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": headers,
                    "key_ok": key_ok,
                }
            )
        if not key_ok:
            return _error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != VERSION:
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        response: web.StreamResponse = await handler(request)
        return response

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "invalid_request_error", "the body is not JSON")
        entries = body.get("requests") if isinstance(body, dict) else None
        problem = batch_problem(entries)
        if problem:
            return _error(400, "invalid_request_error", problem)
        now = datetime.now(UTC)
        with self._lock:
            self._sequence += 1
            batch_id = f"msgbatch_{self._sequence:04d}{secrets.token_hex(8)}"
            batch = _Batch(batch_id, now, now + timedelta(hours=24), list(entries or []))
            self._batches[batch_id] = batch
            return _json(self._view(batch, request))

    async def _retrieve(self, request: web.Request) -> web.Response:
        with self._lock:
            batch = self._advanced(request.match_info["id"])
            return _json(self._view(batch, request)) if batch else _missing()

    async def _list(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "20"))
        with self._lock:
            ids = list(reversed(self._batches))
            after, before = request.query.get("after_id"), request.query.get("before_id")
            if after in ids:
                ids = ids[ids.index(after) + 1 :]
            elif before in ids:
                ids = ids[max(0, ids.index(before) - limit) : ids.index(before)]
            page = [self._view(self._advanced(i), request) for i in ids[:limit]]
            more = len(ids) > limit
        first, last = (page[0]["id"], page[-1]["id"]) if page else (None, None)
        return _json({"data": page, "has_more": more, "first_id": first, "last_id": last})

    async def _cancel(self, request: web.Request) -> web.Response:
        with self._lock:
            batch = self._advanced(request.match_info["id"])
            if batch is None:
                return _missing()
            if batch.ended_at is None and batch.cancel_initiated_at is None:
                batch.cancel_initiated_at = datetime.now(UTC)
            return _json(self._view(batch, request))

    async def _results(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            batch = self._advanced(request.match_info["id"])
            if batch is None:
                return _missing()
            if batch.ended_at is None:
                return _error(400, "invalid_request_error", f"{batch.id} is still processing")
            # Out of request order on purpose: Anthropic promises no order.
            lines = [
                orjson.dumps(
                    {"custom_id": entry["custom_id"], "result": batch.results[entry["custom_id"]]}
                )
                for entry in reversed(batch.requests)
            ]
        response = web.StreamResponse(headers={"Content-Type": "application/binary"})
        await response.prepare(request)
        for line in lines:
            await response.write(line + b"\n")
        await response.write_eof()
        return response

    def _advanced(self, batch_id: str) -> _Batch | None:
        """The batch with every request due processed, cancelled or expired (lock held)."""
        batch = self._batches.get(batch_id)
        if batch is None or batch.ended_at is not None:
            return batch
        now = datetime.now(UTC)
        due = now >= batch.created_at + timedelta(seconds=self.processing_seconds)
        for sequence, entry in enumerate(batch.requests):
            custom_id = entry["custom_id"]
            if custom_id in batch.results:
                continue
            text = orjson.dumps(entry.get("params")).decode()
            if due and _PENDING not in text:
                batch.results[custom_id] = request_result(entry.get("params"), text, sequence)
            elif batch.cancel_initiated_at is not None:
                batch.results[custom_id] = {"type": "canceled"}
            elif now >= batch.expires_at:
                batch.results[custom_id] = {"type": "expired"}
        if len(batch.results) == len(batch.requests):
            batch.ended_at = now
        return batch

    def _view(self, batch: _Batch | None, request: web.Request) -> dict[str, Any]:
        assert batch is not None
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for result in batch.results.values():
            counts[result["type"]] += 1
        counts["processing"] = len(batch.requests) - len(batch.results)
        if batch.ended_at is not None:
            status = "ended"
        else:
            status = "canceling" if batch.cancel_initiated_at else "in_progress"
        origin = self.results_origin or f"http://{request.host}"
        ended = batch.ended_at is not None
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "ended_at": _stamp(batch.ended_at),
            "created_at": _stamp(batch.created_at),
            "expires_at": _stamp(batch.expires_at),
            "archived_at": None,
            "cancel_initiated_at": _stamp(batch.cancel_initiated_at),
            "results_url": f"{origin}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _stamp(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when else None


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: int, kind: str, message: str) -> web.Response:
    return _json({"type": "error", "error": {"type": kind, "message": message}}, status)


def _missing() -> web.Response:
    return _error(404, "not_found_error", "no message batch with that id")

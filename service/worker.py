"""The worker: a Dramatiq actor that runs a chunk of a batch's lines concurrently.

One asyncio event loop per worker process (Dramatiq's AsyncIO middleware)
shares one LLM backend, one Redis pool and one semaphore bounding in-flight
LLM calls to ``TEXTBATCH_LLM_CONCURRENCY``. Results are recorded as lines
finish, each exactly once, so a chunk re-run after a crash only fills gaps.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from typing import Any

import dramatiq
import redis.asyncio as aioredis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from service.line_runner import error_line, run_line
from service.llm.base import ChatBackend
from service.llm.factory import build_backend
from service.queue import RUN_CHUNK_ACTOR, build_broker
from service.records import BatchStatus, LineResult
from service.settings import Settings
from service.storage import BatchStore

log = logging.getLogger(__name__)

# Lines whose batch stopped wanting them get these instead of an LLM call.
STOPPED_LINE_ERRORS = {
    BatchStatus.CANCELLING: ("batch_cancelled", "The batch was cancelled before this line ran."),
    BatchStatus.CANCELLED: ("batch_cancelled", "The batch was cancelled before this line ran."),
    BatchStatus.EXPIRED: (
        "batch_expired",
        "The batch's completion window ended before this line ran.",
    ),
}


class ChunkRunner:
    """Owns the per-process resources and runs chunks on the worker's event loop."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self._store: BatchStore | None = None
        self._backend: ChatBackend | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _resources(self) -> tuple[BatchStore, ChatBackend, asyncio.Semaphore]:
        # Built on first use so they belong to the event loop that runs the chunks.
        if self._store is None or self._backend is None or self._semaphore is None:
            self._store = BatchStore(aioredis.Redis.from_url(self.redis_url))
            self._backend = build_backend(self.settings)
            self._semaphore = asyncio.Semaphore(self.settings.llm_concurrency)
        return self._store, self._backend, self._semaphore

    async def run_chunk(self, batch_id: str, start: int, stop: int) -> None:
        store, backend, semaphore = self._resources()
        state = await store.load_chunk(batch_id, start, stop)
        if state.status is None or not state.pending:
            return
        stopped = STOPPED_LINE_ERRORS.get(state.status)
        if stopped is not None:
            code, message = stopped
            await store.record_results(
                batch_id,
                [
                    error_line(batch_id, index, str(line.get("custom_id", "")), code, message)
                    for index, line in state.pending.items()
                ],
                int(time.time()),
            )
            return

        async def run_and_record(index: int, line: dict[str, Any]) -> None:
            async with semaphore:
                result: LineResult = await run_line(batch_id, index, line, backend)
            await store.record_results(batch_id, [result], int(time.time()))

        await asyncio.gather(*(run_and_record(i, line) for i, line in state.pending.items()))

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()
        if self._store is not None:
            await self._store.redis.aclose()


class _CloseRunnerOnShutdown(Middleware):
    """Closes the runner's connections on the event loop before the loop stops."""

    def __init__(self, runner: ChunkRunner) -> None:
        self.runner = runner

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(self.runner.aclose())


def build_worker(settings: Settings, redis_url: str) -> dramatiq.Worker:
    """A Dramatiq worker with the chunk actor declared on a fresh broker."""
    broker = build_broker(settings, redis_url)
    runner = ChunkRunner(settings, redis_url)
    broker.add_middleware(_CloseRunnerOnShutdown(runner))
    dramatiq.Actor(
        runner.run_chunk,  # type: ignore[arg-type]
        broker=broker,
        actor_name=RUN_CHUNK_ACTOR,
        queue_name=settings.queue_name,
        priority=0,
        options={},
    )
    return dramatiq.Worker(
        broker, queues={settings.queue_name}, worker_threads=settings.worker_threads
    )


def run_worker(settings: Settings, redis_url: str) -> None:
    """Run a worker in this process until SIGINT or SIGTERM."""
    worker = build_worker(settings, redis_url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    log.info(
        "worker running: %d threads, LLM concurrency %d",
        settings.worker_threads,
        settings.llm_concurrency,
    )
    stop.wait()
    log.info("worker stopping")
    worker.stop()
    worker.broker.close()

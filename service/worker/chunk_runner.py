"""The worker: a Dramatiq actor that runs a chunk of a batch's lines concurrently.

One asyncio event loop per worker process (Dramatiq's AsyncIO middleware)
shares one LLM backend, one upstream router, one Redis pool and one semaphore
bounding the lines in hand to twice ``TEXTBATCH_LLM_CONCURRENCY``; the backend's
limiter bounds the calls in flight to it. Results are
recorded as lines finish (grouped while a write is out), each exactly once, so
a chunk re-run after a crash only fills the gaps.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, cast

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from service.execution import LineContext, error_line, run_line, task_limits
from service.llm.call_gate import GateClosed, set_call_gate
from service.llm.factory import CapacityShare, build_backend, priced_model
from service.llm.routing import ProviderChoice, UpstreamRouter
from service.llm.shared_capacity import Priority
from service.redis_server import connect_async
from service.settings import Settings
from service.store.batches import BatchStore
from service.store.durability import DiskDurability
from service.store.lifecycle import EXPIRED, BatchStatus, LineOutcome, StopReason, stop_reason
from service.store.records import ChunkState, LineResult
from service.store.results import ResultStore
from service.store.sealing import KeySeal, SealBroken
from service.worker.line_metrics import FinishedLines
from service.worker.native_runner import NativeRunner
from service.worker.queue import RUN_CHUNK_ACTOR, ChunkDispatcher, build_broker
from service.worker.reaper import run_reaper
from service.worker.result_recorder import ResultRecorder
from service.worker.sweeper import Sweeper
from service.worker.webhook_delivery import BatchRenderer, WebhookDeliverer

log = logging.getLogger(__name__)

# A line checks its batch's status just before it runs; this long a look stays fresh.
STATUS_FRESH_SECONDS = 0.1
# Lines a worker holds per call slot. Preparing a line and reading its answer take a
# little time each; with only as many lines as slots, a slot would idle meanwhile.
# The backend's limiter bounds the calls in flight to ``llm_concurrency``.
LINES_PER_CALL_SLOT = 2
# A stopping worker gives its chunks this long to record what they finished.
STOP_GRACE_SECONDS = 2.0
# A chunk a stopping worker gave back is offered again after this long.
RESUME_DELAY_MS = 200
# A batch whose caller's provider key is no longer held cannot run its lines with it;
# they are not sent with the configured key instead.
KEY_UNAVAILABLE: StopReason = (
    "provider_key_unavailable",
    "The provider key given with this batch is no longer held (it is kept only while the "
    "batch runs); submit the lines again with the key.",
    LineOutcome.FAILED,
)


@dataclass(slots=True)
class _StatusLook:
    status: BatchStatus | None
    expires_at: int | None
    at: float


class ChunkRunner:
    """Owns the per-process resources and runs chunks on the worker's event loop."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self._results: ResultStore | None = None
        self._context: LineContext | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._looks: dict[str, _StatusLook] = {}
        self._looking: dict[str, asyncio.Future[_StatusLook]] = {}
        self._result_recorder: ResultRecorder | None = None
        self._finished_lines = FinishedLines(settings)
        # Chunks running now, and whether the worker is stopping (then no chunk starts).
        self._chunks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        secret = settings.secret_key
        self._seal = KeySeal(secret.get_secret_value()) if secret is not None else None
        self._native: NativeRunner | None = None

    def _recorder(self, results: ResultStore) -> ResultRecorder:
        if self._result_recorder is None:
            self._result_recorder = ResultRecorder(results)
        return self._result_recorder

    def _resources(self) -> tuple[ResultStore, LineContext, asyncio.Semaphore]:
        # Built on first use so they belong to the event loop that runs the chunks.
        if self._results is None or self._context is None or self._semaphore is None:
            self._results = ResultStore(
                connect_async(self.redis_url), self.settings.retention_seconds()
            )
            share = CapacityShare(self.redis_url, Priority.BATCH)
            backend = build_backend(self.settings, share)
            self._context = LineContext(
                backend=backend,
                # One backend per upstream: task and pass-through lines share its limit.
                upstreams=UpstreamRouter(self.settings, share, task_backend=backend),
                task_priced_model=priced_model(self.settings),
                limits=task_limits(self.settings),
            )
            self._semaphore = asyncio.Semaphore(LINES_PER_CALL_SLOT * self.settings.llm_concurrency)
        return self._results, self._context, self._semaphore

    async def _stop_reason(self, results: ResultStore, batch_id: str) -> StopReason | None:
        """Why the batch no longer wants its unrun lines run, if it does not."""
        look = self._looks.get(batch_id)
        if look is None or time.monotonic() - look.at > STATUS_FRESH_SECONDS:
            # One look at a time per batch: the lines that find it stale share it.
            looking = self._looking.get(batch_id)
            if looking is None:
                looking = asyncio.ensure_future(self._look(results, batch_id))
                self._looking[batch_id] = looking
                looking.add_done_callback(lambda _: self._looking.pop(batch_id, None))
            look = await asyncio.shield(looking)
        return stop_reason(look.status, look.expires_at, time.time())

    async def _look(self, results: ResultStore, batch_id: str) -> _StatusLook:
        now = time.monotonic()
        status, expires_at = await results.batch_status(batch_id)
        look = self._looks[batch_id] = _StatusLook(status, expires_at, now)
        return look

    async def run_chunk(self, batch_id: str, start: int, stop: int) -> None:
        if self._stopping:
            raise dramatiq.Retry(delay=RESUME_DELAY_MS)
        task = asyncio.current_task()
        assert task is not None
        self._chunks.add(task)
        try:
            await self._run_chunk(batch_id, start, stop)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Stopped by the worker's shutdown, not failed: the finished lines are recorded,
            # the rest run when the chunk comes back.
            raise dramatiq.Retry(delay=RESUME_DELAY_MS) from None
        finally:
            self._chunks.discard(task)

    async def stop_chunks(self, grace: float) -> None:
        """Stop running chunks and record what they finished, within about ``grace`` seconds.

        Lines still calling the upstream are abandoned, not failed: their chunk goes back
        to the queue and a worker runs them later (recorded lines are skipped then).
        """
        self._stopping = True
        running = set(self._chunks)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=grace / 2)
        if self._result_recorder is not None and not await self._result_recorder.drain(grace / 2):
            log.warning("worker stopping before every finished line was recorded; they run again")

    def _batch_context(self, context: LineContext, state: ChunkState) -> LineContext | None:
        """The context of a batch's lines under its provider choice; None: its key is gone.

        The key is opened per chunk and held only while the chunk runs; the views that
        carry it share the upstream's pool, so nothing is left to close.
        """
        if state.provider is None and not state.provider_key:
            return context
        api_key = None
        if state.provider_key:
            if state.sealed_provider_key is None or self._seal is None:
                return None
            try:
                api_key = self._seal.open(state.sealed_provider_key)
            except SealBroken:
                log.warning("a batch's provider key cannot be decrypted; its lines fail")
                return None
        return replace(context, choice=ProviderChoice(state.provider, api_key))

    async def _run_chunk(self, batch_id: str, start: int, stop: int) -> None:
        results, shared_context, semaphore = self._resources()
        recorder = self._recorder(results)
        state = await results.load_chunk(batch_id, start, stop)
        if state.status is None:
            return
        batch_context = self._batch_context(shared_context, state)
        driving: asyncio.Future[None] | None = None
        if state.lane == "native":
            # Upstream batches carry the configured keys: a caller's key is for direct calls.
            self._native = self._native or NativeRunner.build(
                self.settings, results, shared_context
            )
            record = functools.partial(recorder.record, batch_id, state.owner)
            stop_check = functools.partial(self._stop_reason, results, batch_id)
            driving = await self._native.take_chunk(
                batch_id, start, state, results, record, stop_check
            )

        def stopped(index: int, line: dict[str, Any], reason: StopReason) -> LineResult:
            code, message, outcome = reason
            custom_id = str(line.get("custom_id", ""))
            return error_line(batch_id, index, custom_id, code, message, outcome=outcome)

        async def gate() -> None:
            # Checked again once the line holds a call slot, which it may have waited for.
            reason = await self._stop_reason(results, batch_id)
            if reason is not None:
                raise GateClosed(reason)

        async def run_and_record(index: int, line: dict[str, Any]) -> None:
            async with semaphore:
                reason = await self._stop_reason(results, batch_id)
                if reason is None and batch_context is None:
                    reason = KEY_UNAVAILABLE
                if reason is not None:
                    result = stopped(index, line, reason)
                else:
                    assert batch_context is not None
                    remaining = None if state.expires_at is None else state.expires_at - time.time()
                    set_call_gate(gate)
                    try:
                        # In this task (no task per line, as wait_for would make).
                        async with asyncio.timeout(remaining):
                            result = await run_line(batch_id, index, line, batch_context)
                    except TimeoutError:
                        result = stopped(index, line, EXPIRED)
                    except GateClosed as closed:
                        result = stopped(index, line, cast(StopReason, closed.reason))
            await recorder.record(batch_id, state.owner, result)
            self._finished_lines.count(line, result)

        try:
            await asyncio.gather(*(run_and_record(i, line) for i, line in state.pending.items()))
            if driving is not None:
                await driving
        finally:
            if driving is not None and not driving.done():
                driving.cancel()
        self._looks.pop(batch_id, None)

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.backend.aclose()
            await self._context.upstreams.aclose()
        if self._native is not None:
            await self._native.aclose()
        if self._results is not None:
            await self._results.redis.aclose()


class _WorkerLifecycle(Middleware):
    """Starts the heartbeat, the sweeper, the reaper and webhook deliveries with the worker;
    closes connections at the end."""

    def __init__(
        self, runner: ChunkRunner, settings: Settings, redis_url: str, render: BatchRenderer
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.redis_url = redis_url
        self.render = render
        self._stop = threading.Event()
        self._sweep: Any = None
        self._deliver: Any = None
        self._reap: Any = None

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        # The broker counts a worker dead when it issues no command for the heartbeat
        # timeout; a worker busy with long chunks fetches nothing, so beat explicitly.
        interval = self.settings.heartbeat_timeout_ms / 4000
        threading.Thread(
            target=self._beat, args=(broker, interval), name="textbatch-heartbeat", daemon=True
        ).start()
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            dispatcher = ChunkDispatcher(broker, self.settings.queue_name, self.settings.chunk_size)
            redis = connect_async(self.redis_url)
            # The sweeper's writes answer no client, so it never waits on them.
            durability = DiskDurability(redis, self.settings.durable_write_timeout_ms)
            store = BatchStore(redis, durability)
            sweeper = Sweeper(self.settings, store, dispatcher)
            self._sweep = asyncio.run_coroutine_threadsafe(sweeper.run_forever(), loop_thread.loop)
            deliverer = WebhookDeliverer(self.settings, redis, self.render)
            self._deliver = asyncio.run_coroutine_threadsafe(
                deliverer.run_forever(), loop_thread.loop
            )
            self._reap = asyncio.run_coroutine_threadsafe(
                run_reaper(self.settings, redis, durability), loop_thread.loop
            )

    def _beat(self, broker: Any, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                broker.do_qsize(self.settings.queue_name)
            except Exception:
                log.info("heartbeat: Redis unreachable")

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self._stop.set()
        for loop_task in (self._sweep, self._deliver, self._reap):
            if loop_task is not None:
                loop_task.cancel()
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(self.runner.stop_chunks(STOP_GRACE_SECONDS))

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        # Only now: closing the clients while chunks still ran would fail their lines.
        loop_thread = get_event_loop_thread()
        if loop_thread is not None:
            loop_thread.run_coroutine(self.runner.aclose())


def build_worker(settings: Settings, redis_url: str, render: BatchRenderer) -> dramatiq.Worker:
    """A Dramatiq worker with the chunk actor declared on a fresh broker; ``render`` gives
    the batch object its webhook deliveries carry."""
    broker = build_broker(settings, redis_url)
    runner = ChunkRunner(settings, redis_url)
    broker.add_middleware(_WorkerLifecycle(runner, settings, redis_url, render))
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


def run_worker(settings: Settings, redis_url: str, render: BatchRenderer) -> None:
    """Run a worker in this process until SIGINT or SIGTERM."""
    worker = build_worker(settings, redis_url, render)
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
    worker.stop(timeout=int(STOP_GRACE_SECONDS * 1000))
    worker.broker.close()

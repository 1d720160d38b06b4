"""Drives a native batch: its upstream batches made once, polled, and their results recorded.

``drive`` runs in the message of a batch's first chunk (the other chunks run the
batch's direct lines). Path: hold the batch → render and plan the groups (stored
once) → for each group the stored upstream batch, else the one ``find`` sees by its
tag, else a new one, stored before it is polled → poll with backoff → record each
ended group's lines through the same recorder as direct lines. A killed worker's
message comes back (Dramatiq's heartbeat) and resumes from what is stored. Our
cancel or expiry cancels the upstream batches and keeps what they finished.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from service.errors import NativeBatchApiError
from service.execution import LineContext
from service.llm.native.base import NativeBatchClient, NativeResult, NativeStatus
from service.llm.native.factory import build_native_client
from service.settings import Settings
from service.store.durability import DiskDurability
from service.store.lifecycle import StopReason
from service.store.native import NativeGroup, NativeStore, UpstreamBatchEntry
from service.store.records import ChunkState, LineResult
from service.store.results import ResultStore
from service.worker.native_plan import (
    RenderedLine,
    fits_alone,
    render_line,
    split_groups,
    upstream_limits,
)
from service.worker.native_results import answered_line, stopped_line, unfinished_line

log = logging.getLogger(__name__)

FIRST_POLL_SECONDS = 0.5
# The driver's hold on a batch outlives its longest pause between polls by this much, so
# a dead driver's hold soon ends and the message that comes back takes over.
DRIVER_SLACK_MS = 10_000
# Upstream windows shorter than this are refused by the hosted APIs; ours still bounds the
# lines, as our expiry cancels the upstream batch.
MIN_UPSTREAM_WINDOW_SECONDS = 24 * 3600

Record = Callable[[LineResult], Awaitable[None]]
StopCheck = Callable[[], Awaitable[StopReason | None]]


def upstream_window(window: str) -> str:
    """The window an upstream batch is given: ours, or 24 hours when ours is shorter."""
    # Ours was checked at intake (digits and one of s, m, h).
    seconds = int(window[:-1]) * {"s": 1, "m": 60, "h": 3600}[window[-1]]
    return window if seconds >= MIN_UPSTREAM_WINDOW_SECONDS else "24h"


class NativeRunner:
    """One per worker process; builds one client per upstream it drives."""

    def __init__(self, settings: Settings, store: NativeStore, context: LineContext) -> None:
        self.settings = settings
        self.store = store
        self.context = context
        self._clients: dict[str, NativeBatchClient] = {}
        self._ttl_ms = int(settings.native_poll_max * 1000) * 2 + DRIVER_SLACK_MS

    @classmethod
    def build(cls, settings: Settings, results: ResultStore, context: LineContext) -> NativeRunner:
        """A runner on the results' Redis connections."""
        durability = DiskDurability(results.redis, settings.durable_write_timeout_ms)
        return cls(settings, NativeStore(results.redis, durability), context)

    def client(self, provider: str) -> NativeBatchClient:
        if provider not in self._clients:
            upstream = self.settings.upstream_config(provider)
            assert upstream is not None
            self._clients[provider] = build_native_client(provider, upstream, self.settings)
        return self._clients[provider]

    async def render(self, state: ChunkState) -> dict[int, RenderedLine]:
        """The pending lines that go in upstream batches, by index."""
        rendered: dict[int, RenderedLine] = {}
        for index, line in state.pending.items():
            item = await render_line(
                index,
                line,
                self.context,
                self.settings,
                lane=state.lane,
                lane_chosen=state.lane_chosen,
            )
            if item is not None:
                rendered[index] = item
        limits = upstream_limits(self.settings, {item.provider for item in rendered.values()})
        return {i: item for i, item in rendered.items() if fits_alone(item, limits)}

    async def take_chunk(
        self,
        batch_id: str,
        start: int,
        chunk: ChunkState,
        results: ResultStore,
        record: Record,
        stopped: StopCheck,
    ) -> asyncio.Future[None] | None:
        """Take a native batch's chunk: its lines that go upstream leave ``chunk.pending``.

        The first chunk's message also drives the batch's upstream batches: the
        returned future, to await once the chunk's direct lines are done.
        """
        driving = None
        if start == 0:
            everything = await results.load_chunk(batch_id, 0, chunk.total)
            driving = asyncio.ensure_future(self.drive(batch_id, everything, record, stopped))
        for index in await self.render(chunk):
            del chunk.pending[index]
        return driving

    async def drive(
        self, batch_id: str, state: ChunkState, record: Record, stopped: StopCheck
    ) -> None:
        """Run the upstream batches of the batch's pending lines (``state``: all of them).

        Lines that render no request are not touched: their chunks run them directly.
        """
        token = secrets.token_hex(8)
        # Held by another worker: a copy of the message (the sweeper's), or a dead worker's
        # hold not yet lapsed. Wait: when the holder is gone, this message goes on.
        while not await self.store.hold_driver(batch_id, token, self._ttl_ms):
            await asyncio.sleep(self._ttl_ms / 4000)
            if (await self.store.status(batch_id)).is_final:
                return
        try:
            rendered = await self.render(state)
            limits = upstream_limits(self.settings, {item.provider for item in rendered.values()})
            plan = await self.store.plan(batch_id, split_groups(list(rendered.values()), limits))
            window = upstream_window(state.completion_window)
            entries = await self.store.entries(batch_id)
            for group in plan:
                if group.number in entries:
                    continue
                await self.store.hold_driver(batch_id, token, self._ttl_ms)
                entry = await self._create(batch_id, group, rendered, window, stopped)
                if entry is not None:
                    entries[group.number] = entry
                    continue
                reason = await stopped()
                if reason is not None:  # stopped before its upstream batch was made
                    for i in group.indices:
                        if i in state.pending:
                            await record(stopped_line(batch_id, i, state.pending[i], reason))
            await self._poll(batch_id, token, state, plan, entries, record, stopped)
        finally:
            await self.store.release_driver(batch_id, token)

    async def _create(
        self,
        batch_id: str,
        group: NativeGroup,
        rendered: dict[int, RenderedLine],
        window: str,
        stopped: StopCheck,
    ) -> UpstreamBatchEntry | None:
        requests = [rendered[i].request for i in group.indices if i in rendered]
        if not requests or await stopped() is not None:
            return None
        client = self.client(group.provider)
        tag = f"{batch_id}-{group.number}"
        # Made before a crash that came before storing it: found by its tag, not made again.
        found = await client.find(tag)
        try:
            batch = found or await client.submit(tag, requests, window)
        except NativeBatchApiError as exc:
            if exc.transient:
                raise  # the message is retried and resumes here
            log.warning(
                "upstream %s refused batch %s group %d: %s",
                group.provider,
                batch_id,
                group.number,
                exc.message,
            )
            entry = UpstreamBatchEntry(group.provider, "", NativeStatus.FAILED.value)
        else:
            entry = UpstreamBatchEntry(
                group.provider, batch.id, batch.status.value, batch.request_counts
            )
        await self.store.save(batch_id, group.number, entry)
        return entry

    async def _poll(
        self,
        batch_id: str,
        token: str,
        state: ChunkState,
        plan: list[NativeGroup],
        entries: dict[int, UpstreamBatchEntry],
        record: Record,
        stopped: StopCheck,
    ) -> None:
        groups = {group.number: group for group in plan}
        delay = FIRST_POLL_SECONDS
        cancelled: set[int] = set()
        while any(not entry.recorded for entry in entries.values()):
            await self.store.hold_driver(batch_id, token, self._ttl_ms)
            await self.store.touch_active(batch_id, int(time.time()))
            reason = await stopped()
            for number, entry in sorted(entries.items()):
                if entry.recorded:
                    continue
                try:
                    await self._look(batch_id, number, entry, reason, cancelled)
                except NativeBatchApiError as exc:
                    if not exc.transient:
                        raise
                    log.info("upstream batch %s: %s; trying again", entry.id, exc.message)
                    continue
                if NativeStatus(entry.status).ended:
                    await self._record(batch_id, state, groups[number], entry, record, stopped)
                    entry.recorded = True
                    await self.store.save(batch_id, number, entry)
            # Woken at our expiry, so the upstream batches are cancelled on time.
            remaining = None if state.expires_at is None else state.expires_at - time.time()
            pause = min(delay, remaining) if remaining is not None and remaining > 0 else delay
            await asyncio.sleep(max(0.05, pause))
            delay = min(delay * 2, self.settings.native_poll_max)

    async def _look(
        self,
        batch_id: str,
        number: int,
        entry: UpstreamBatchEntry,
        reason: StopReason | None,
        cancelled: set[int],
    ) -> None:
        if not entry.id:
            return  # refused at creation: nothing to poll
        client = self.client(entry.provider)
        if reason is not None and number not in cancelled:
            cancelled.add(number)
            batch = await client.cancel(entry.id)
        else:
            batch = await client.retrieve(entry.id)
        if (batch.status.value, batch.request_counts) != (entry.status, entry.request_counts):
            entry.status, entry.request_counts = batch.status.value, batch.request_counts
            await self.store.save(batch_id, number, entry)

    async def _record(
        self,
        batch_id: str,
        state: ChunkState,
        group: NativeGroup,
        entry: UpstreamBatchEntry,
        record: Record,
        stopped: StopCheck,
    ) -> None:
        found: dict[int, NativeResult] = {}
        if entry.id:
            async for result in self.client(entry.provider).results(entry.id):
                if result.custom_id.isdigit():
                    found[int(result.custom_id)] = result
        reason = await stopped()
        upstream = self.settings.upstream_config(entry.provider)

        async def one(index: int) -> None:
            line = state.pending[index]
            result = found.get(index)
            if result is not None and result.state in {"succeeded", "errored"}:
                await record(await answered_line(batch_id, index, line, result, self.context))
                return
            outcome = await unfinished_line(
                batch_id,
                index,
                line,
                ours=reason,
                upstream=NativeStatus(entry.status),
                fallback_direct=upstream is not None and upstream.fallback == "direct",
                context=self.context,
            )
            await record(outcome)

        await asyncio.gather(*(one(i) for i in group.indices if i in state.pending))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

"""The workers' webhook loop: fan batch ends out to webhooks, deliver them, retry, give up.

Every worker runs it; the outbox's scripts make sure an event is fanned out once
and a delivery attempted by one worker at a time (see ``service.store.webhook_outbox``).
A delivery ends on a 2xx; a 410 Gone disables its webhook; anything else (another
status, a timeout, a refused connection, an address no longer public) is retried
with exponential backoff and jitter until ``TEXTBATCH_WEBHOOK_RETRY_WINDOW`` after
its first attempt, then given up and counted on the webhook. Delivery is at least
once: a worker killed after the receiver's 2xx but before recording it makes the
next worker send it again, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import orjson
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service.errors import NotFound, RouterUnavailable, WebhookUrlRefused
from service.settings import Settings
from service.store import keys
from service.store.batches import BatchStore
from service.store.durability import DiskDurability
from service.store.records import BatchRecord
from service.store.results import ResultStore
from service.store.webhook_outbox import ClaimedDelivery, OutboxEvent, WebhookOutbox
from service.store.webhooks import WebhookStore
from service.worker.webhook_sender import post_event, webhook_client
from service.worker.webhook_targets import parse_webhook_url, resolve_target

log = logging.getLogger(__name__)

# The batch object as ``GET /v1/batches/{id}`` shows it, from its record and its tokens
# per model: the API's shape, so the API hands its renderer to the worker.
BatchRenderer = Callable[[BatchRecord, dict[str, tuple[int, int]]], dict[str, Any]]

# Events fanned out and deliveries claimed per round.
ROUND_EVENTS = 100
ROUND_DELIVERIES = 32
# A claim outlives its attempt by this much, so a slow attempt is never taken over.
LEASE_MARGIN_SECONDS = 5.0


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt: doubling from ``base`` up to ``cap``, half of it
    random so receivers that failed together are not retried together."""
    delay = min(cap, base * 2.0 ** min(attempts - 1, 40))
    return delay / 2 + random.uniform(0, delay / 2)


def event_body(event: str, ended_at: int, batch: dict[str, Any]) -> str:
    """The Standard Webhooks payload: the event type, when it happened, the batch."""
    stamp = datetime.fromtimestamp(ended_at, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event, "timestamp": stamp, "data": batch}).decode()


class WebhookDeliverer:
    """Runs ``deliver_once`` every ``webhook_poll_interval`` seconds in each worker."""

    def __init__(self, settings: Settings, redis: aioredis.Redis, render: BatchRenderer) -> None:
        self.settings = settings
        self.outbox = WebhookOutbox(redis)
        # Its writes answer no client, so it never waits on them.
        durability = DiskDurability(redis, settings.durable_write_timeout_ms)
        self.webhooks = WebhookStore(redis, durability)
        self.batches = BatchStore(redis, durability)
        self.results = ResultStore(redis)
        self.render = render
        self.redis = redis
        self._client: httpx.AsyncClient | None = None
        # Attempts still out: a slow receiver never holds up the next round's deliveries.
        self._in_flight: set[asyncio.Task[None]] = set()

    async def fan_out_events(self, now: int) -> None:
        for event in await self.outbox.events(ROUND_EVENTS):
            await self.outbox.fan_out(event, await self._wanting(event), now)

    async def _wanting(self, event: OutboxEvent) -> list[str]:
        # A batch gone (taken back, deleted) or a key without a webhook for it: dropped.
        try:
            owner = await self._batch_owner(event.batch_id)
        except NotFound:
            return []
        return [hook.id for hook in await self.webhooks.list_for(owner) if hook.wants(event.event)]

    async def deliver_due(self, now: float) -> None:
        token = secrets.token_hex(8)
        lease_until = now + self.settings.webhook_timeout + LEASE_MARGIN_SECONDS
        for delivery_id in await self.outbox.due(now, ROUND_DELIVERIES):
            held = await self.outbox.claim(delivery_id, int(now), lease_until, token)
            if held is not None:
                task = asyncio.get_running_loop().create_task(self.attempt(held))
                self._in_flight.add(task)
                task.add_done_callback(self._attempt_done)

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Its claim runs out and a later round retries it.
            log.warning("webhooks: an attempt failed: %s", type(task.exception()).__name__)

    async def attempt(self, delivery: ClaimedDelivery) -> None:
        """One attempt of a claimed delivery, settled whatever it gives."""
        try:
            # Both looked up as the batch's key's: a delivery never crosses keys.
            owner = await self._batch_owner(delivery.batch_id)
            webhook = await self.webhooks.get(delivery.webhook_id, owner)
            record = await self.batches.get_batch(delivery.batch_id, owner)
        except NotFound:
            await self.outbox.end(delivery, "webhook or batch gone", "dropped")
            return
        if webhook.status != "enabled":
            await self.outbox.end(delivery, "webhook disabled", "dropped")
            return
        batch = self.render(record, await self.results.tokens_by_model(record.id))
        body = event_body(delivery.event, delivery.ended_at, batch)
        target = parse_webhook_url(webhook.url)
        timeout = self.settings.webhook_timeout
        try:
            async with asyncio.timeout(timeout):
                resolved = await resolve_target(target, self.settings.webhook_allow_private)
                status = await post_event(
                    self._http(), resolved, webhook.secret, delivery.id, body, timeout
                )
            outcome = f"HTTP {status}"
        except WebhookUrlRefused as refused:
            status, outcome = None, refused.code
        except TimeoutError:
            status, outcome = None, f"no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            status, outcome = None, type(exc).__name__
        await self._settle(delivery, webhook.id, target.host, status, outcome)

    async def _batch_owner(self, batch_id: str) -> str:
        owner = cast(bytes | None, await self.redis.hget(keys.batch(batch_id), "owner"))
        if owner is None:
            raise NotFound("batch gone")
        return owner.decode()

    async def _settle(
        self,
        delivery: ClaimedDelivery,
        webhook_id: str,
        host: str,
        status: int | None,
        outcome: str,
    ) -> None:
        now = time.time()
        shown = f"delivery {delivery.id} of {delivery.event} to {webhook_id} ({host[:100]})"
        if status is not None and 200 <= status < 300:
            await self.outbox.end(delivery, outcome, "delivered")
            await self.webhooks.note_delivery(webhook_id, int(now), "delivered", failed=False)
            log.info("%s delivered after %d attempt(s)", shown, delivery.attempts)
            return
        if status == 410:
            await self.outbox.end(delivery, outcome, "failed")
            await self.webhooks.disable(webhook_id, "the endpoint answered 410 Gone")
            await self.webhooks.note_delivery(webhook_id, int(now), outcome, failed=True)
            log.warning("%s: 410 Gone; the webhook is disabled", shown)
            return
        if now - delivery.first_attempt_at >= self.settings.webhook_retry_window:
            await self.outbox.end(delivery, outcome, "failed")
            await self.webhooks.note_delivery(webhook_id, int(now), outcome, failed=True)
            log.warning("%s given up after %d attempts (%s)", shown, delivery.attempts, outcome)
            return
        delay = retry_delay(
            delivery.attempts, self.settings.webhook_retry_base, self.settings.webhook_retry_max
        )
        await self.outbox.retry_at(delivery, now + delay, outcome)
        await self.webhooks.note_delivery(webhook_id, int(now), outcome, failed=False)
        log.info(
            "%s failed (%s); attempt %d in %.1f s", shown, outcome, delivery.attempts + 1, delay
        )

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the loop that runs the attempts.
        if self._client is None:
            self._client = webhook_client(self.settings.webhook_timeout)
        return self._client

    async def deliver_once(self) -> None:
        await self.fan_out_events(int(time.time()))
        await self.deliver_due(time.time())

    async def run_forever(self) -> None:
        try:
            await self._rounds()
        finally:
            # Stopped: attempts still out are abandoned; their claims lapse and another
            # worker sends them again under the same webhook-id.
            for task in list(self._in_flight):
                task.cancel()

    async def _rounds(self) -> None:
        while True:
            try:
                await self.deliver_once()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError, RouterUnavailable):
                log.info("webhooks: Redis unreachable, will try again")
            except Exception:
                log.exception("webhooks: delivery round failed")
            await asyncio.sleep(self.settings.webhook_poll_interval)

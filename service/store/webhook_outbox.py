"""The webhook outbox: batch ends waiting to be announced, and the deliveries they make.

A batch's end is written to the outbox by the same script or transaction that
gives it its final status, so an ended batch is never without its event. A
worker fans each event out into one delivery per webhook that wants it (once:
the event leaves the outbox in the same script), then claims due deliveries
with a lease, attempts them and settles each: delivered, retried later, or
given up. A delivery's id is the ``webhook-id`` its receiver sees, fixed by
event and webhook, so every attempt carries the same one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from service.store import keys
from service.store.scripts import lua_script

# How long the record of an ended delivery is kept, for whoever looks into one.
DELIVERY_RECORD_SECONDS = 7 * 24 * 3600

_FAN_OUT = lua_script("webhook_fan_out.lua")
_CLAIM = lua_script("webhook_claim.lua")
_SETTLE = lua_script("webhook_settle.lua")


def delivery_id(batch_id: str, event: str, webhook_id: str) -> str:
    """The ``webhook-id`` of an event's delivery to one webhook: the same on every attempt."""
    digest = hashlib.blake2b(f"{batch_id} {event} {webhook_id}".encode(), digest_size=16)
    return f"msg_{digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A batch that ended, and how: ``batch.completed``, ``batch.failed`` and so on."""

    batch_id: str
    event: str
    ended_at: int

    @property
    def member(self) -> str:
        return f"{self.batch_id} {self.event}"


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery this worker holds the lease of, with what its attempt needs."""

    id: str
    batch_id: str
    event: str
    webhook_id: str
    ended_at: int
    attempts: int
    first_attempt_at: int
    token: str


class WebhookOutbox:
    """The outbox and delivery queue, for the workers that deliver webhooks."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._fan_out = redis.register_script(_FAN_OUT)
        self._claim = redis.register_script(_CLAIM)
        self._settle = redis.register_script(_SETTLE)

    async def events(self, limit: int) -> list[OutboxEvent]:
        """The oldest events not yet fanned out."""
        raw = await self.redis.zrange(keys.webhook_outbox(), 0, limit - 1, withscores=True)
        events = []
        for member, score in cast(list[tuple[bytes, float]], raw):
            batch_id, _, event = member.decode().partition(" ")
            events.append(OutboxEvent(batch_id, event, int(score)))
        return events

    async def fan_out(self, event: OutboxEvent, webhook_ids: Sequence[str], now: int) -> bool:
        """Queue one delivery per webhook and take the event out; False if done already.

        With no webhook the event is just dropped.
        """
        ids = [delivery_id(event.batch_id, event.event, webhook) for webhook in webhook_ids]
        done = await self._fan_out(
            keys=[
                keys.webhook_outbox(),
                keys.webhook_deliveries(),
                *(keys.webhook_delivery(item) for item in ids),
            ],
            args=[
                event.member,
                now,
                event.batch_id,
                event.event,
                event.ended_at,
                *ids,
                *webhook_ids,
            ],
        )
        return bool(done)

    async def due(self, now: float, limit: int) -> list[str]:
        """Ids of deliveries due by ``now``, oldest first (not yet claimed)."""
        raw = await self.redis.zrangebyscore(
            keys.webhook_deliveries(), "-inf", now, start=0, num=limit
        )
        return [item.decode() for item in cast(list[bytes], raw)]

    async def claim(
        self, delivery: str, now: int, lease_until: float, token: str
    ) -> ClaimedDelivery | None:
        """Lease a due delivery until ``lease_until``; None if another worker has it."""
        raw = await self._claim(
            keys=[keys.webhook_deliveries(), keys.webhook_delivery(delivery)],
            args=[delivery, now, lease_until, token],
        )
        if not raw:
            return None
        pairs = cast(list[bytes], raw)
        fields = {pairs[i].decode(): pairs[i + 1].decode() for i in range(0, len(pairs), 2)}
        return ClaimedDelivery(
            id=delivery,
            batch_id=fields["batch_id"],
            event=fields["event"],
            webhook_id=fields["webhook_id"],
            ended_at=int(fields["ended_at"]),
            attempts=int(fields["attempts"]),
            first_attempt_at=int(fields["first_attempt_at"]),
            token=token,
        )

    async def retry_at(self, delivery: ClaimedDelivery, at: float, outcome: str) -> bool:
        """Make the delivery due again at ``at``; False if its lease was lost meanwhile."""
        return await self._settled(delivery, outcome, str(at), "pending")

    async def end(self, delivery: ClaimedDelivery, outcome: str, state: str) -> bool:
        """End the delivery (``delivered``, ``failed`` or ``dropped``), keeping its record."""
        return await self._settled(delivery, outcome, "", state)

    async def _settled(
        self, delivery: ClaimedDelivery, outcome: str, next_at: str, state: str
    ) -> bool:
        done = await self._settle(
            keys=[keys.webhook_deliveries(), keys.webhook_delivery(delivery.id)],
            args=[delivery.id, delivery.token, outcome, next_at, state, DELIVERY_RECORD_SECONDS],
        )
        return bool(done)

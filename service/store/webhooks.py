"""The webhook store: an API key's webhooks, registered, listed, read and deleted in Redis.

A webhook belongs to the key that made it; another key's lookups find nothing.
Its signing secret is stored because every delivery is signed with it; it is
handed to the client once, when the webhook is made, and never read back out
by the API. Deliveries are ``service.store.webhook_outbox``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from service.errors import Conflict, NotFound
from service.store import keys
from service.store.durability import DiskDurability, redis_unavailable_as_router_error
from service.store.scripts import lua_script

# Every event a webhook may ask for: a batch reaching each final status.
WEBHOOK_EVENTS = ("batch.completed", "batch.failed", "batch.expired", "batch.cancelled")

_REGISTER = lua_script("webhook_register.lua")
_NOTE = lua_script("webhook_note.lua")


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A webhook as stored in its hash."""

    id: str
    owner: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: int
    # "enabled", or "disabled" once its endpoint answered 410 Gone.
    status: str = "enabled"
    last_delivery_at: int | None = None
    last_delivery_status: str | None = None
    failed_deliveries: int = 0

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> WebhookRecord:
        text = {key.decode(): value.decode() for key, value in raw.items()}
        last_at = text.get("last_delivery_at")
        return cls(
            id=text["id"],
            owner=text["owner"],
            url=text["url"],
            events=tuple(text["events"].split(",")),
            secret=text["secret"],
            created_at=int(text["created_at"]),
            status=text.get("status", "enabled"),
            last_delivery_at=int(last_at) if last_at else None,
            last_delivery_status=text.get("last_delivery_status") or None,
            failed_deliveries=int(text.get("failed_deliveries", "0")),
        )

    def as_hash(self) -> dict[str, str | int]:
        return {
            "id": self.id,
            "owner": self.owner,
            "url": self.url,
            "events": ",".join(self.events),
            "secret": self.secret,
            "created_at": self.created_at,
            "status": self.status,
        }

    def wants(self, event: str) -> bool:
        return self.status == "enabled" and event in self.events


def _not_found(webhook_id: str) -> NotFound:
    return NotFound(f"No webhook found with id '{webhook_id}'.", param="webhook_id")


class WebhookStore:
    """Reads and writes webhooks for one Redis connection pool."""

    def __init__(self, redis: aioredis.Redis, durability: DiskDurability) -> None:
        self.redis = redis
        self.durability = durability
        self._register = redis.register_script(_REGISTER)
        self._note = redis.register_script(_NOTE)

    async def register(self, webhook: WebhookRecord, limit: int) -> None:
        """Store a new webhook, unless its key already has ``limit`` of them (409)."""
        fields: list[str | int] = []
        for name, value in webhook.as_hash().items():
            fields += [name, value]
        await self.durability.check_writable()
        with self.durability.writing():
            stored = await self._register(
                keys=[keys.webhook(webhook.id), keys.owner_webhooks(webhook.owner)],
                args=[limit, webhook.created_at, webhook.id, *fields],
            )
        if not stored:
            raise Conflict(
                f"This API key already has {limit} webhooks, the most it may have; "
                "delete one first.",
                code="webhook_limit_reached",
            )
        await self.durability.settle()

    async def get(self, webhook_id: str, owner: str) -> WebhookRecord:
        """The webhook, if it exists and belongs to ``owner``; otherwise NotFound."""
        with redis_unavailable_as_router_error():
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(keys.webhook(webhook_id)))
        if not raw or raw.get(b"owner", b"").decode() != owner:
            raise _not_found(webhook_id)
        return WebhookRecord.from_hash(raw)

    async def list_for(self, owner: str) -> list[WebhookRecord]:
        """The owner's webhooks, oldest first (there are at most a handful)."""
        with redis_unavailable_as_router_error():
            ids = cast(list[bytes], await self.redis.zrange(keys.owner_webhooks(owner), 0, -1))
            async with self.redis.pipeline(transaction=False) as pipe:
                for webhook_id in ids:
                    pipe.hgetall(keys.webhook(webhook_id.decode()))
                hashes = await pipe.execute()
        return [WebhookRecord.from_hash(raw) for raw in hashes if raw]

    async def delete(self, webhook_id: str, owner: str) -> None:
        """Remove the owner's webhook; its deliveries still due are dropped when they come up."""
        await self.get(webhook_id, owner)
        with self.durability.writing():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.webhook(webhook_id))
                pipe.zrem(keys.owner_webhooks(owner), webhook_id)
                await pipe.execute()
        await self.durability.settle()

    async def disable(self, webhook_id: str, reason: str) -> None:
        """Stop deliveries to a webhook whose endpoint said it is gone (HTTP 410)."""
        await self._note(
            keys=[keys.webhook(webhook_id)],
            args=[0, "status", "disabled", "disabled_reason", reason],
        )

    async def note_delivery(self, webhook_id: str, at: int, outcome: str, failed: bool) -> None:
        """Keep the last delivery's time and outcome on the webhook, for its owner to see."""
        await self._note(
            keys=[keys.webhook(webhook_id)],
            args=[int(failed), "last_delivery_at", at, "last_delivery_status", outcome],
        )

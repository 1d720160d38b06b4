"""Idempotent batch creation: a retry with the same ``Idempotency-Key`` gets the same batch.

The key is claimed with SET NX before the batch is committed, holding the new
batch id and a digest of the request. A retry with the same digest is given
that batch; a different body under the same key is a conflict. A claim whose
batch never came to exist (the API died in between) is stale and is replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import orjson
import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from service.errors import Conflict, InvalidRequest
from service.store import keys
from service.store.batches import redis_unavailable_as_router_error
from service.store.redis_faults import is_disk_refusal

KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Claim:
    """What an idempotency key stands for: the batch it made and the request that made it."""

    batch_id: str
    digest: str


class RequestDigest:
    """A running SHA-256 over what identifies a request: its route options and body bytes."""

    def __init__(self, *parts: str, enabled: bool = True) -> None:
        # Disabled, it hashes nothing and its digest is empty: no key will compare it.
        self._hash = hashlib.sha256() if enabled else None
        for part in parts:
            self.update(part.encode("utf-8", "surrogatepass") + b"\0")

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest() if self._hash is not None else ""

    async def tee(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Pass a body stream through, hashing it on the way."""
        if self._hash is None:
            async for chunk in chunks:
                yield chunk
            return
        async for chunk in chunks:
            self._hash.update(chunk)
            yield chunk


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.", param="Idempotency-Key"
        )
    return key


class IdempotencyStore:
    """Claims and looks up idempotency keys, per API key owner."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    @staticmethod
    def _key(owner: str, key: str) -> str:
        return keys.idempotency(
            owner, hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        )

    async def lookup(self, owner: str, key: str) -> Claim | None:
        with redis_unavailable_as_router_error():
            raw = cast(bytes | None, await self.redis.get(self._key(owner, key)))
        if raw is None:
            return None
        data = orjson.loads(raw)
        return Claim(batch_id=data["batch_id"], digest=data["digest"])

    async def claim(self, owner: str, key: str, claim: Claim) -> Claim | None:
        """Claim the key for a new batch; returns the earlier claim if there is one."""
        value = orjson.dumps({"batch_id": claim.batch_id, "digest": claim.digest})
        with redis_unavailable_as_router_error():
            won = await self.redis.set(self._key(owner, key), value, nx=True, ex=KEY_TTL_SECONDS)
        return None if won else await self.lookup(owner, key)

    async def release(self, owner: str, key: str) -> None:
        with redis_unavailable_as_router_error():
            try:
                await self.redis.delete(self._key(owner, key))
            except redis_errors.ResponseError as exc:
                # Redis's disk is full: the claim stays, and a retry finds it stale.
                if not is_disk_refusal(exc):
                    raise


def conflict(key: str) -> Conflict:
    return Conflict(
        f"Idempotency-Key '{key[:64]}' was already used with a different request.",
        code="idempotency_key_reused",
        param="Idempotency-Key",
    )

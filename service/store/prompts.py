"""The prompt store: an API key's prompt templates and their numbered versions, in Redis.

Each prompt is one hash under its owner's namespace, so another key's prompts
are never even looked up: summary fields (``created_at``, ``updated_at``,
``latest``, ``published``) and one ``v:<n>`` field per version, holding that
version's messages, settings and placeholders as JSON. Versions are never
changed once written. The owner's slugs sit in a sorted set for listing and
counting. Every change that checks a limit runs as one Lua script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from service.errors import Conflict, InvalidRequest, NotFound
from service.store import keys
from service.store.durability import DiskDurability, redis_unavailable_as_router_error
from service.store.prompt_cache import TemplateCache
from service.store.scripts import lua_script

SLUG_PATTERN = re.compile(r"[a-z0-9-]{1,64}")
MAX_PROMPTS_PER_KEY = 1000
MAX_VERSIONS_PER_PROMPT = 100
_SUMMARY_FIELDS = ("created_at", "updated_at", "latest", "published")

# KEYS: prompt hash, owner index. ARGV: slug, now, first version JSON, publish flag, limit.
_CREATE = lua_script("prompt_create.lua")
# KEYS: prompt hash. ARGV: version JSON, limit, now. Returns the new number, -1 or -2.
_ADD_VERSION = lua_script("prompt_add_version.lua")
# KEYS: prompt hash. ARGV: version, now. Returns 0, -1 (no prompt) or -2 (no such version).
_PUBLISH = lua_script("prompt_publish.lua")


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable version: its messages, model settings and the placeholders they read."""

    version: int
    messages: list[dict[str, str]]
    model_config: dict[str, Any]
    placeholders: list[str]
    created_at: int

    def to_json(self) -> bytes:
        # The number is the hash field's name, so it is not repeated in the value.
        return orjson.dumps(
            {
                "messages": self.messages,
                "model_config": self.model_config,
                "placeholders": self.placeholders,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_json(cls, version: int, raw: bytes) -> PromptVersion:
        data = orjson.loads(raw)
        return cls(
            version=version,
            messages=data["messages"],
            model_config=data["model_config"],
            placeholders=data["placeholders"],
            created_at=int(data["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class PromptSummary:
    """A prompt without its versions."""

    slug: str
    created_at: int
    updated_at: int
    latest_version: int
    published_version: int | None


@dataclass(frozen=True, slots=True)
class Prompt:
    summary: PromptSummary
    versions: list[PromptVersion]


def check_slug(slug: str) -> str:
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidRequest(
            "slug must be 1 to 64 characters of lowercase letters, digits and '-'.", param="slug"
        )
    return slug


def _not_found(slug: str) -> NotFound:
    return NotFound(f"No prompt found with slug '{slug[:64]}'.", param="slug")


def _summary(slug: str, values: list[bytes | None]) -> PromptSummary | None:
    created_at, updated_at, latest, published = values
    if created_at is None or updated_at is None or latest is None:
        return None
    return PromptSummary(
        slug=slug,
        created_at=int(created_at),
        updated_at=int(updated_at),
        latest_version=int(latest),
        published_version=int(published) if published is not None else None,
    )


class PromptStore:
    """Reads and writes prompts for one Redis connection pool; every call names the owner."""

    def __init__(
        self,
        redis: aioredis.Redis,
        durability: DiskDurability,
        templates: TemplateCache | None = None,
    ) -> None:
        self.redis = redis
        # Every write a client is told succeeded waits for it to be on disk first.
        self.durability = durability
        # Compiled versions of the stored templates, shared by every submission.
        self.templates = templates or TemplateCache()
        self._create = redis.register_script(_CREATE)
        self._add_version = redis.register_script(_ADD_VERSION)
        self._publish = redis.register_script(_PUBLISH)

    async def create(self, owner: str, slug: str, first: PromptVersion, publish: bool) -> None:
        """Store a new prompt with its first version; 409 when the slug is taken."""
        now = str(first.created_at)
        args: list[str | bytes | int] = [
            slug,
            now,
            first.to_json(),
            "1" if publish else "0",
            MAX_PROMPTS_PER_KEY,
        ]
        with self.durability.writing():
            outcome = await self._create(
                keys=[keys.prompt(owner, slug), keys.owner_prompts(owner)], args=args
            )
        await self.durability.settle()
        if outcome == b"exists":
            raise Conflict(
                f"A prompt with slug '{slug}' already exists; add a version to it instead.",
                code="prompt_exists",
                param="slug",
            )
        if outcome == b"full":
            raise InvalidRequest(
                f"This API key already has {MAX_PROMPTS_PER_KEY} prompts, the limit per key; "
                "delete one first.",
                code="too_many_prompts",
            )

    async def add_version(self, owner: str, slug: str, version: PromptVersion) -> int:
        """Store the next version of a prompt and return its number."""
        args: list[str | bytes | int] = [
            version.to_json(),
            MAX_VERSIONS_PER_PROMPT,
            str(version.created_at),
        ]
        with self.durability.writing():
            number = int(await self._add_version(keys=[keys.prompt(owner, slug)], args=args))
        await self.durability.settle()
        if number == -1:
            raise _not_found(slug)
        if number == -2:
            raise InvalidRequest(
                f"Prompt '{slug}' already has {MAX_VERSIONS_PER_PROMPT} versions, the limit per "
                "prompt; create a new prompt instead.",
                code="too_many_versions",
            )
        return number

    async def publish(self, owner: str, slug: str, version: int, now: int) -> None:
        """Make ``version`` the one lines use when they name no version."""
        with self.durability.writing():
            outcome = int(
                await self._publish(keys=[keys.prompt(owner, slug)], args=[version, str(now)])
            )
        await self.durability.settle()
        if outcome == -1:
            raise _not_found(slug)
        if outcome == -2:
            raise InvalidRequest(
                f"Prompt '{slug}' has no version {version}.",
                code="unknown_prompt_version",
                param="version",
            )

    async def summary(self, owner: str, slug: str) -> PromptSummary | None:
        """The prompt's summary, or None when the owner has no prompt of that slug."""
        with redis_unavailable_as_router_error():
            values = await self.redis.hmget(keys.prompt(owner, slug), list(_SUMMARY_FIELDS))
        return _summary(slug, cast(list[bytes | None], values))

    async def version(self, owner: str, slug: str, version: int) -> PromptVersion | None:
        """One version, or None when the prompt or that version does not exist."""
        with redis_unavailable_as_router_error():
            raw = await self.redis.hget(keys.prompt(owner, slug), f"v:{version}")
        return PromptVersion.from_json(version, cast(bytes, raw)) if raw is not None else None

    async def get(self, owner: str, slug: str) -> Prompt:
        """The prompt with every version, oldest first; NotFound when the owner has none."""
        with redis_unavailable_as_router_error():
            raw = cast(dict[bytes, bytes], await self.redis.hgetall(keys.prompt(owner, slug)))
        fields = {name.decode(): value for name, value in raw.items()}
        summary = _summary(slug, [fields.get(name) for name in _SUMMARY_FIELDS])
        if summary is None:
            raise _not_found(slug)
        versions = [
            PromptVersion.from_json(int(name[2:]), value)
            for name, value in fields.items()
            if name.startswith("v:")
        ]
        return Prompt(summary, sorted(versions, key=lambda item: item.version))

    async def list_prompts(
        self, owner: str, limit: int, after: str | None
    ) -> tuple[list[PromptSummary], bool]:
        """The owner's prompts in slug order, after ``after``; and whether more follow."""
        start = f"({after}" if after is not None else "-"
        with redis_unavailable_as_router_error():
            raw = await self.redis.zrangebylex(
                keys.owner_prompts(owner), start, "+", start=0, num=limit + 1
            )
            slugs = [item.decode() for item in cast(list[bytes], raw)]
            async with self.redis.pipeline(transaction=False) as pipe:
                for slug in slugs[:limit]:
                    pipe.hmget(keys.prompt(owner, slug), list(_SUMMARY_FIELDS))
                rows = await pipe.execute()
        summaries = [_summary(slug, row) for slug, row in zip(slugs, rows, strict=False)]
        return [item for item in summaries if item is not None], len(slugs) > limit

    async def delete(self, owner: str, slug: str) -> None:
        """Remove the prompt and every version; batches already submitted keep their lines."""
        with self.durability.writing():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.prompt(owner, slug))
                pipe.zrem(keys.owner_prompts(owner), slug)
                removed, _ = await pipe.execute()
        await self.durability.settle()
        if not removed:
            raise _not_found(slug)

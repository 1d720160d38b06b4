"""Compiled prompt templates kept per API key, and the compile work one submission may cause.

Compiling a template costs up to two seconds of CPU per 100 KB, rendering one a
millisecond, so a template is compiled when its version is stored and kept. The
cache is keyed by key and content (never shared between keys, so no key learns
from timing what another stored) and bounded by template characters: each key
may hold ``per_key_chars``, all keys ``total_chars``. A key over its share only
evicts its own templates, and when the whole cache is full the key holding the
most gives way first, so one key cycling through many prompts cannot push
another key's templates out. What is not cached is compiled again, and a
submission may compile at most ``submission_chars`` of templates: past that its
line is refused, so the work one request causes stays bounded.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from jinja2 import Template

Compiled = tuple[Template, frozenset[str]]


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    per_key_chars: int = 2_000_000
    total_chars: int = 16_000_000
    submission_chars: int = 1_000_000


class CompileBudget:
    """Characters of template one submission may still compile."""

    def __init__(self, chars: int) -> None:
        self.limit = chars
        self.remaining = chars

    def charge(self, chars: int) -> bool:
        """Take ``chars`` from the budget; False (and nothing taken) when it has not enough."""
        if chars > self.remaining:
            return False
        self.remaining -= chars
        return True


def _digest(source: str) -> bytes:
    return hashlib.blake2b(source.encode("utf-8", "surrogatepass"), digest_size=20).digest()


class TemplateCache:
    """Compiled templates by (key, content), bounded per key and in all; thread-safe."""

    def __init__(self, limits: TemplateLimits | None = None) -> None:
        self.limits = limits or TemplateLimits()
        self._by_owner: dict[str, OrderedDict[bytes, tuple[Compiled, int]]] = {}
        self._owner_chars: dict[str, int] = {}
        self._total_chars = 0
        # Compiles run in worker threads, several submissions at once.
        self._lock = threading.Lock()

    def get(self, owner: str, source: str) -> Compiled | None:
        digest = _digest(source)
        with self._lock:
            entries = self._by_owner.get(owner)
            found = entries.get(digest) if entries is not None else None
            if found is None or entries is None:
                return None
            entries.move_to_end(digest)
            return found[0]

    def put(self, owner: str, source: str, compiled: Compiled) -> None:
        chars = len(source)
        if chars > self.limits.per_key_chars:
            return
        digest = _digest(source)
        with self._lock:
            entries = self._by_owner.setdefault(owner, OrderedDict())
            if digest in entries:
                entries.move_to_end(digest)
                return
            entries[digest] = (compiled, chars)
            self._owner_chars[owner] = self._owner_chars.get(owner, 0) + chars
            self._total_chars += chars
            while self._owner_chars[owner] > self.limits.per_key_chars:
                self._evict_oldest(owner)
            while self._total_chars > self.limits.total_chars:
                self._evict_oldest(max(self._owner_chars, key=self._owner_chars.__getitem__))

    def cached_chars(self, owner: str) -> int:
        with self._lock:
            return self._owner_chars.get(owner, 0)

    def _evict_oldest(self, owner: str) -> None:
        entries = self._by_owner[owner]
        _, (_, chars) = entries.popitem(last=False)
        self._owner_chars[owner] -= chars
        self._total_chars -= chars
        if not entries:
            del self._by_owner[owner]
            del self._owner_chars[owner]

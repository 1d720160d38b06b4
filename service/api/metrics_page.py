"""``GET /metrics``: the Prometheus scrape, off the ``/v1`` surface and without a key.

Served on the API's port, or on ``TEXTBATCH_METRICS_PORT`` instead, or not at all
(``TEXTBATCH_METRICS=false``). Besides what the processes recorded, a scrape reads the
queue's depth and the batches per status from Redis; each is one command, whatever
the number of batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import redis
from fastapi import APIRouter, FastAPI, Request, Response

from service.observability.exposition import (
    CONTENT_TYPE,
    ReadAtScrape,
    render,
    scrape_registry,
    serve_on_port,
)
from service.settings import Settings
from service.store.status_counts import read_status_counts
from service.worker.queue import ChunkDispatcher

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# A scrape must not hang on a Redis that does not answer: its families are left out.
_REDIS_TIMEOUT_SECONDS = 2.0

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    collectors: CollectorRegistry = request.app.state.metrics_registry
    # Reading the processes' files and Redis blocks: off the event loop.
    body = await anyio.to_thread.run_sync(render, collectors)
    return Response(body, media_type=CONTENT_TYPE)


def build_registry(
    settings: Settings, dispatcher: ChunkDispatcher, redis_url: str
) -> tuple[CollectorRegistry, Callable[[], None]]:
    """The scrape's registry, and what closes its Redis client."""
    client = redis.Redis.from_url(
        redis_url, socket_timeout=_REDIS_TIMEOUT_SECONDS, socket_connect_timeout=2
    )
    queue = settings.queue_name
    from_redis = [
        ReadAtScrape(
            "textbatch_queue_messages",
            "Chunk messages of the line queue: waiting, delayed or held by a worker.",
            "queue",
            lambda: {queue: dispatcher.queued_messages()},
        ),
        ReadAtScrape(
            "textbatch_batches",
            "Batches by status.",
            "status",
            lambda: read_status_counts(client),
        ),
    ]
    return scrape_registry(from_redis), client.close


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Add ``GET /metrics`` on the API's port when metrics are on and not moved elsewhere."""
    if settings.metrics and settings.metrics_port is None:
        app.include_router(router)


def start_metrics_port(settings: Settings, collectors: CollectorRegistry) -> Callable[[], None]:
    """Serve the scrape on ``TEXTBATCH_METRICS_PORT`` if set; returns what stops it."""
    if not settings.metrics or settings.metrics_port is None:
        return lambda: None
    return serve_on_port(settings.metrics_port, settings.host, collectors)

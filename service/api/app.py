"""Builds the FastAPI application from settings: shared resources, routers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from service.api import batches, chat, files, health
from service.api.deps import AppState
from service.api.errors import install_error_handlers
from service.auth import Keyring, build_keyring
from service.files import FileStore
from service.llm.factory import build_backend
from service.pricing import PriceTable
from service.queue import ChunkDispatcher, build_broker
from service.result_store import ResultStore
from service.settings import Settings
from service.storage import BatchStore
from service.submission import Submitter
from service.upstreams import UpstreamRouter


def create_app(settings: Settings, redis_url: str, keyring: Keyring | None = None) -> FastAPI:
    """The API for one Redis; the keyring defaults to the settings' keys."""
    resolved_keyring = keyring or build_keyring(settings)
    # Read at start-up so a bad price table stops the service instead of pricing wrongly.
    prices = PriceTable.load(settings.price_table)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=30, health_check_interval=10
        )
        broker = build_broker(settings, redis_url)
        backend = build_backend(settings)
        upstreams = UpstreamRouter(settings)
        store = BatchStore(redis)
        dispatcher = ChunkDispatcher(broker, settings.queue_name, settings.chunk_size)
        app.state.textbatch = AppState(
            settings=settings,
            keyring=resolved_keyring,
            store=store,
            results=ResultStore(redis),
            files=FileStore(redis, settings.data_dir / "files"),
            submitter=Submitter(settings, store, dispatcher, upstreams.route_fault),
            backend=backend,
            upstreams=upstreams,
            prices=prices,
        )
        try:
            yield
        finally:
            await upstreams.aclose()
            await backend.aclose()
            await redis.aclose()
            broker.close()

    app = FastAPI(
        title="textbatch",
        version="0.1.0",
        summary="Batch extract, summarize and classify over any OpenAI-compatible LLM.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(batches.router)
    app.include_router(files.router)
    app.include_router(chat.router)
    return app

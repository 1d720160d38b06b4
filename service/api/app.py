"""Builds the FastAPI application from settings: shared resources, routers, error handlers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import (
    batch_events,
    batch_retry,
    batches,
    chat,
    files,
    health,
    prompts,
    webhooks,
)
from service.api.dashboard_page import install_dashboard
from service.api.deps import AppState
from service.api.docs_page import install_docs
from service.api.errors import error_response, install_error_handlers
from service.api.metrics_page import build_registry, install_metrics, start_metrics_port
from service.api.openapi_document import install_openapi
from service.api.upstream_probe import build_probe
from service.auth import Keyring, build_keyring
from service.errors import PayloadTooLarge, RouterUnavailable, TextbatchError, UnsupportedMediaType
from service.intake.commit import Submitter
from service.intake.idempotency import IdempotencyStore
from service.llm.factory import CapacityShare, build_backend
from service.llm.pricing import PriceTable
from service.llm.routing import UpstreamRouter
from service.llm.shared_capacity import Priority
from service.redis_server import connect_async
from service.settings import Settings
from service.store.batches import BatchStore
from service.store.durability import DiskDurability
from service.store.files.opening import open_file_store
from service.store.prompt_cache import TemplateCache, TemplateLimits
from service.store.prompts import PromptStore
from service.store.results import ResultStore
from service.store.retention import BatchRemoval
from service.worker.queue import ChunkDispatcher, build_broker

MAX_SHOWN_ENCODING_CHARS = 40

API_DESCRIPTION = (
    "Send your key with **Authorize** (the `x-api-key` header or `Authorization: Bearer`); "
    "`textbatch key` prints the generated one. `POST /v1/batches` takes JSONL, one request "
    "per line; see the README for every task's fields."
)


def _header(scope: Scope, name: bytes) -> str:
    return ", ".join(value.decode("latin-1") for key, value in scope["headers"] if key == name)


def _is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


class RequestBodyGuard:
    """Refuses request bodies no route should read, before any route reads them.

    A body with a Content-Encoding is a 415: bodies are never decompressed, as a few
    kilobytes of gzip can expand to gigabytes. A JSON body is parsed whole, and parsing
    takes many times its size in memory, so it may be at most ``json_limit`` bytes
    (413); JSONL and file uploads are read as streams and bounded by their routes.
    """

    def __init__(self, app: ASGIApp, json_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
            return
        if _is_json(scope):
            receive = self._limited(receive)
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> TextbatchError | None:
        encodings = [
            token.strip()
            for token in _header(scope, b"content-encoding").lower().split(",")
            if token.strip() not in ("", "identity")
        ]
        if encodings:
            shown = ", ".join(encodings)[:MAX_SHOWN_ENCODING_CHARS]
            return UnsupportedMediaType(
                f"Compressed request bodies are not accepted (Content-Encoding '{shown}'); "
                "send the body uncompressed.",
                param="content-encoding",
            )
        declared = _header(scope, b"content-length")
        # Past 18 digits it is too large anyway, and int() refuses a few thousand digits.
        too_large = declared.isdigit() and (len(declared) > 18 or int(declared) > self.json_limit)
        return self._too_large() if too_large and _is_json(scope) else None

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The JSON body is larger than {self.json_limit} bytes, the limit for a JSON "
            "document; send large batches as JSONL, which is read as a stream."
        )

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.json_limit:
                # Raised inside the route that reads the body, so the error handlers answer it.
                raise self._too_large()
            return message

        return limited_receive


def create_app(settings: Settings, redis_url: str, keyring: Keyring | None = None) -> FastAPI:
    """The API for one Redis; the keyring defaults to the settings' keys."""
    resolved_keyring = keyring or build_keyring(settings)
    # Read at start-up so a bad price table stops the service instead of pricing wrongly.
    prices = PriceTable.load(settings.price_table)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect_async(
            redis_url, socket_connect_timeout=2, socket_timeout=30, health_check_interval=10
        )
        broker = build_broker(settings, redis_url)
        # The API serves realtime calls only: they go ahead of batch lines upstream.
        share = CapacityShare(redis_url, Priority.REALTIME)
        backend = build_backend(settings, share)
        # One backend per upstream: task and pass-through calls share its limit.
        upstreams = UpstreamRouter(settings, share, task_backend=backend)
        durability = DiskDurability(redis, settings.durable_write_timeout_ms)
        # Said at start (one warning) if Redis cannot confirm fsyncs; a Redis down now is
        # probed again on the first write.
        with contextlib.suppress(RouterUnavailable):
            await durability.probe()
        store = BatchStore(redis, durability)
        closing = contextlib.AsyncExitStack()
        file_store = await closing.enter_async_context(
            open_file_store(
                settings.file_store,
                redis,
                durability,
                s3_endpoint_url=settings.s3_endpoint_url,
                s3_region=settings.s3_region,
            )
        )
        templates = TemplateCache(
            TemplateLimits(
                per_key_chars=settings.template_cache_chars_per_key,
                total_chars=settings.template_cache_chars,
                submission_chars=settings.max_template_chars_per_request,
            )
        )
        prompt_store = PromptStore(redis, durability, templates)
        dispatcher = ChunkDispatcher(broker, settings.queue_name, settings.chunk_size)
        app.state.metrics_registry, close_metrics = build_registry(settings, dispatcher, redis_url)
        stop_metrics_port = start_metrics_port(settings, app.state.metrics_registry)
        app.state.textbatch = AppState(
            settings=settings,
            keyring=resolved_keyring,
            store=store,
            results=ResultStore(redis, settings.retention_seconds()),
            files=file_store,
            submitter=Submitter(settings, store, dispatcher, upstreams.route_fault, prompt_store),
            idempotency=IdempotencyStore(redis),
            backend=backend,
            upstreams=upstreams,
            prices=prices,
            prompts=prompt_store,
            removal=BatchRemoval(redis, durability, settings.reap_step),
            upstream_probe=build_probe(settings),
        )
        try:
            yield
        finally:
            stop_metrics_port()
            close_metrics()
            await closing.aclose()
            if app.state.textbatch.upstream_probe is not None:
                await app.state.textbatch.upstream_probe.aclose()
            await app.state.textbatch.submitter.drain()
            await upstreams.aclose()
            await backend.aclose()
            await redis.aclose()
            broker.close()

    app = FastAPI(
        title="textbatch",
        version="0.1.0",
        summary="Batch extract, summarize and classify over any OpenAI-compatible LLM.",
        lifespan=lifespan,
        # /docs is served by install_docs from local assets; ReDoc would load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    install_dashboard(app)
    install_openapi(app, API_DESCRIPTION)
    install_error_handlers(app)
    app.add_middleware(RequestBodyGuard, json_limit=settings.max_line_bytes)
    app.include_router(health.router)
    app.include_router(batches.router)
    app.include_router(batch_retry.router)
    app.include_router(batch_events.router)
    app.include_router(files.router)
    app.include_router(chat.router)
    app.include_router(prompts.router)
    app.include_router(webhooks.router)
    install_metrics(app, settings)
    return app

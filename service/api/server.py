"""The HTTP server the API runs under: uvicorn on httptools, held to the connection bounds."""

from __future__ import annotations

import uvicorn
from starlette.types import ASGIApp

from service.api.http_guard import ConnectionLimits, guarded_protocol
from service.settings import Settings


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_idle_timeout=settings.body_idle_timeout,
        body_timeout=settings.body_timeout,
    )


def build_server(app: ASGIApp, settings: Settings) -> uvicorn.Server:
    """A server for ``app`` on the settings' address; ``run()`` serves until stopped."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        http=guarded_protocol(connection_limits(settings)),
        # No route speaks WebSocket; an upgrade request is answered as plain HTTP.
        ws="none",
    )
    return uvicorn.Server(config)

"""The one place where errors become HTTP responses of the shape ``{"error": {...}}``."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service.errors import BatchRejected, InvalidRequest, RouterUnavailable, TextbatchError

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}
# Paths and other echoed input are clipped so an error never grows with the request.
MAX_ECHO_CHARS = 200


def _clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def error_body(
    error_type: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    line: int | None = None,
) -> dict[str, Any]:
    return {
        "error": {
            "type": error_type,
            "code": code,
            "message": message,
            "param": param,
            "line": line,
        }
    }


def error_response(exc: TextbatchError) -> JSONResponse:
    """The response for a deliberate error, also used by middleware that answers before routing."""
    body = error_body(exc.error_type, exc.code, exc.message, param=exc.param, line=exc.line)
    if isinstance(exc, BatchRejected):
        body["error"]["lines"] = [fault.as_dict() for fault in exc.faults]
        body["error"]["more_lines"] = exc.more
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def _textbatch_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TextbatchError)
    return error_response(exc)


def _request_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(part) for part in first["loc"][1:]) or None
    return JSONResponse(
        error_body("invalid_request_error", "invalid_request", str(first["msg"]), param=param),
        status_code=400,
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
    message = str(exc.detail)
    route = f"{_clip(request.method, 20)} {_clip(request.url.path)}"
    if exc.status_code == 404 and message == "Not Found":
        message = f"No route matches {route}."
    elif exc.status_code == 405:
        headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
        allowed = headers.get("allow")
        message = f"{route} is not allowed" + (f"; use {allowed}." if allowed else ".")
    return JSONResponse(
        error_body(error_type, code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    # Nobody is left to read this answer; it only keeps a vanished client out of the error log.
    log.info("client went away during %s %s", request.method, request.url.path)
    return error_response(
        InvalidRequest("The client went away before the request body ended.", param="body")
    )


def _router_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("Redis unavailable while serving %s: %s", request.url.path, type(exc).__name__)
    return _textbatch_error(
        request,
        RouterUnavailable("The batch router cannot reach its Redis store; try again shortly."),
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("server_error", "internal_error", "The server failed to handle the request."),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TextbatchError, _textbatch_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    for redis_fault in (
        redis_errors.ConnectionError,
        redis_errors.TimeoutError,
        dramatiq.errors.ConnectionError,
    ):
        app.add_exception_handler(redis_fault, _router_unavailable)
    app.add_exception_handler(Exception, _unexpected)

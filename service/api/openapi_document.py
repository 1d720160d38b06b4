"""The OpenAPI document as readers see it: Markdown descriptions instead of reST markup.

Docstrings in this code base quote names the reST way (````name````); Swagger UI
renders Markdown, where that shows as stray backticks.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_REST_LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
_TEXT_FIELDS = frozenset({"description", "summary"})


def _markdown(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _REST_LITERAL.sub(r"`\1`", item)
            if key in _TEXT_FIELDS and isinstance(item, str)
            else _markdown(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_markdown(item) for item in value]
    return value


def install_openapi(app: FastAPI, description: str) -> None:
    """Build the document once, on first request, with descriptions in Markdown."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=description,
                routes=app.routes,
            )
            app.openapi_schema = _markdown(schema)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]

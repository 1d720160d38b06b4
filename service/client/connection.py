"""Finding the service and its key, and turning its answers into results or clear exits."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson
from httpx_sse import SSEError, connect_sse

from service.auth import GENERATED_KEY_FILE
from service.settings import default_data_dir

DEFAULT_URL = "http://127.0.0.1:8000"

# Exit codes of the client commands: 1 is kept for "some lines failed".
EXIT_REFUSED = 2  # the service refused the request (bad input, unknown id, no key)
EXIT_UNREACHABLE = 3  # no answer from the service, or it failed itself


def service_url() -> str:
    return os.environ.get("TEXTBATCH_URL", "").strip().rstrip("/") or DEFAULT_URL


def data_dir() -> Path:
    configured = os.environ.get("TEXTBATCH_DATA_DIR", "").strip()
    return Path(configured) if configured else default_data_dir()


def key_file() -> Path:
    return data_dir() / GENERATED_KEY_FILE


def api_key() -> str:
    """``TEXTBATCH_API_KEY``, else the key the service generated in its data directory."""
    key = os.environ.get("TEXTBATCH_API_KEY", "").strip()
    if key:
        return key
    path = key_file()
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        fail(
            f"no API key: set TEXTBATCH_API_KEY, or run this where the service keeps {path}",
            EXIT_REFUSED,
        )


def fail(message: str, code: int) -> NoReturn:
    print(f"textbatch: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


class Service:
    """One HTTP client to the service, with the key on every request."""

    def __init__(self, url: str | None = None, key: str | None = None) -> None:
        self.url = url or service_url()
        self._client = httpx.Client(
            base_url=self.url,
            headers={"x-api-key": key or api_key()},
            timeout=httpx.Timeout(60.0, connect=5.0),
            # A redirect could send the key to another host.
            follow_redirects=False,
        )

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The answer to one request; a refusal or an unreachable service ends the command."""
        try:
            response = self._client.request(method, path, **options)
        except httpx.TransportError as exc:
            fail(
                f"cannot reach the service at {self.url} ({exc}); is it running?", EXIT_UNREACHABLE
            )
        if response.is_success:
            return response
        fail(_refusal(response), EXIT_REFUSED if response.status_code < 500 else EXIT_UNREACHABLE)

    def json(self, method: str, path: str, **options: Any) -> Any:
        return self.call(method, path, **options).json()

    def events(self, path: str) -> Iterator[tuple[str, Any]]:
        """Server-Sent Events from ``path`` as (event, decoded data), until the stream ends.

        Ends early, having yielded what came, when the service has no such stream
        (an older one) or the connection breaks: the caller then falls back to polling.
        """
        try:
            with connect_sse(self._client, "GET", path) as source:
                if source.response.status_code != 200:
                    return
                for event in source.iter_sse():
                    if event.data:
                        yield event.event, orjson.loads(event.data)
        except (httpx.TransportError, SSEError, orjson.JSONDecodeError):
            return


def _refusal(response: httpx.Response) -> str:
    """The service's error as one readable block: status, code, message and faulty lines."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:500]}"
    text = f"HTTP {response.status_code} {error.get('code')}: {error.get('message')}"
    for fault in error.get("lines") or []:
        where = f"line {fault.get('line')}"
        if fault.get("param"):
            where += f" {fault['param']}"
        text += f"\n  {where}: {fault.get('message')}"
    if error.get("more_lines"):
        text += f"\n  … and {error['more_lines']} more line(s)"
    return text

"""One HTTP exchange with an upstream: no redirects, a total deadline, a cap on the answer's size.

Redirects are never followed: a 307 would re-send the line's text to another host.
The deadline covers connecting, the headers and the whole body, so a server that
drips bytes cannot hold a call. The answer is read in pieces and given up once it
passes the cap, so a huge answer costs no more memory than the cap. The upstream's
key is scrubbed from the body before anything else reads it: some servers echo it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

SCRUBBED = "***"
_READ_PIECE_BYTES = 64 * 1024


class AnswerTooLarge(Exception):
    """The answer is larger than the cap; ``declared`` when its Content-Length said so."""

    def __init__(self, limit: int, *, declared: int | None = None) -> None:
        size = f"declares {declared} bytes" if declared is not None else "is larger"
        super().__init__(f"the upstream's answer {size} than the limit of {limit} bytes")


@dataclass(frozen=True)
class UpstreamAnswer:
    """One HTTP answer of the upstream, its body read whole (and scrubbed)."""

    status_code: int
    # Case-insensitive, as HTTP header names are.
    headers: Mapping[str, str]
    content: bytes
    elapsed: float = 0.0

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @functools.cached_property
    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError:
            return None


@dataclass(frozen=True)
class EnvProxy:
    """The forward proxy an upstream's calls go through; ``url`` None: they go direct."""

    url: URL | None = None
    auth: aiohttp.BasicAuth | None = None


DIRECT = EnvProxy()


def env_proxy(base_url: str) -> EnvProxy:
    """The proxy ``HTTP_PROXY`` / ``HTTPS_PROXY`` name for ``base_url``, unless ``NO_PROXY``
    excludes its host, as most HTTP clients read them.

    Read once per session, not per call: aiohttp's own lookup (``trust_env``) walks the
    whole environment and ``~/.netrc`` in a thread for every request, which took a third
    of a worker's time at a few thousand calls a second. Every path of one upstream is
    on the same host and scheme, so one answer holds for all its calls.
    """
    try:
        proxy, auth = get_env_proxy_for_url(URL(base_url))
    except LookupError:
        return DIRECT
    return EnvProxy(proxy, auth)


def new_session(
    api_key: str | None, *, connect_timeout: float, max_connections: int
) -> aiohttp.ClientSession:
    """A keep-alive session for one upstream; each exchange sets its own total deadline."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return aiohttp.ClientSession(
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
        # The environment's proxy is read once, by ``env_proxy``, and given per exchange.
        trust_env=False,
    )


async def exchange(
    session: aiohttp.ClientSession,
    url: str,
    payload: bytes,
    *,
    deadline: float,
    max_bytes: int,
    secret: str | None,
    headers: Mapping[str, str] | None = None,
    proxy: EnvProxy = DIRECT,
) -> UpstreamAnswer:
    """POST ``payload``; raises ``TimeoutError``, ``aiohttp.ClientError`` or ``AnswerTooLarge``.

    ``headers`` override the session's for this exchange only (a caller's own key).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(deadline):
        async with session.post(
            url,
            data=payload,
            allow_redirects=False,
            headers=headers,
            proxy=proxy.url,
            proxy_auth=proxy.auth,
        ) as raw:
            declared = raw.content_length
            if declared is not None and declared > max_bytes:
                raise AnswerTooLarge(max_bytes, declared=declared)
            content = await _read_capped(raw, max_bytes)
            status, answer_headers = raw.status, raw.headers
    if secret:
        content = content.replace(secret.encode(), SCRUBBED.encode())
        if any(secret in value for value in answer_headers.values()):
            # A request id header is handed on too; an echoed key must not ride along.
            answer_headers = CIMultiDictProxy(
                CIMultiDict(
                    (name, value.replace(secret, SCRUBBED))
                    for name, value in answer_headers.items()
                )
            )
    return UpstreamAnswer(status, answer_headers, content, elapsed=loop.time() - started)


async def _read_capped(raw: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    pieces: list[bytes] = []
    size = 0
    async for piece in raw.content.iter_chunked(_READ_PIECE_BYTES):
        size += len(piece)
        if size > max_bytes:
            raise AnswerTooLarge(max_bytes)
        pieces.append(piece)
    return b"".join(pieces)


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` replaced, for messages built from upstream errors."""
    return text.replace(secret, SCRUBBED) if secret else text

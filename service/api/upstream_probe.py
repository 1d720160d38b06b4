"""Whether the default upstream answers at all, for ``/readyz``: a cheap ``GET /models``.

Any HTTP answer below 500 counts (a server without ``/models`` says 404, one that wants
another key says 401: both are there); no connection, a timeout or a 5xx do not. The
verdict is kept a few seconds, so a probe polled every second does not load the upstream.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from service.settings import Settings

PROBE_TIMEOUT_SECONDS = 2.0
KEEP_VERDICT_SECONDS = 5.0


class UpstreamProbe:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.url = f"{base_url}/models"
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        # Never follow a redirect: the key would go to a host nobody configured.
        self._client = httpx.AsyncClient(
            headers=headers, timeout=PROBE_TIMEOUT_SECONDS, follow_redirects=False
        )
        self._verdict: bool | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()

    async def answers(self) -> bool:
        async with self._lock:
            now = time.monotonic()
            if self._verdict is None or now - self._checked_at >= KEEP_VERDICT_SECONDS:
                self._verdict = await self._probe()
                self._checked_at = time.monotonic()
            return self._verdict

    async def _probe(self) -> bool:
        try:
            response = await self._client.get(self.url)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def aclose(self) -> None:
        await self._client.aclose()


def build_probe(settings: Settings) -> UpstreamProbe | None:
    """A probe of the default upstream, or ``None`` for the offline engine."""
    if settings.llm_base_url is None:
        return None
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return UpstreamProbe(settings.llm_base_url, key)

"""Upstream calls honour HTTP_PROXY / NO_PROXY, as most HTTP clients do."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from service.llm.base import ChatRequest
from service.llm.openai_compat import OpenAICompatibleBackend

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-proxy",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "via proxy"}}],
    }
)


async def _answer_as_proxy(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, targets: list[str]
) -> None:
    """A forward proxy that answers every request itself and notes what it was asked for."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head.decode().split("\r\n")
    targets.append(request_line.split(" ")[1])
    length = next(
        int(line.split(":", 1)[1])
        for line in header_lines
        if line.lower().startswith("content-length:")
    )
    await reader.readexactly(length)
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(COMPLETION), COMPLETION)
    )
    await writer.drain()
    writer.close()


def test_calls_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    targets: list[str] = []

    async def scenario() -> str:
        server = await asyncio.start_server(
            lambda r, w: _answer_as_proxy(r, w, targets), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # The upstream's name resolves nowhere: only the proxy can answer for it.
        backend = OpenAICompatibleBackend(
            base_url="http://llm.upstream.invalid/v1", api_key=None, model="m", timeout=5
        )
        try:
            reply = await backend.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        finally:
            await backend.aclose()
            server.close()
        return reply.content

    assert asyncio.run(scenario()) == "via proxy"
    assert targets == ["http://llm.upstream.invalid/v1/chat/completions"]


def test_no_proxy_sends_the_upstreams_calls_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    proxied: list[str] = []
    served: list[str] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append("direct")
        await _answer_as_proxy(reader, writer, [])

    async def scenario() -> str:
        proxy = await asyncio.start_server(
            lambda r, w: _answer_as_proxy(r, w, proxied), "127.0.0.1", 0
        )
        direct = await asyncio.start_server(upstream, "127.0.0.1", 0)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        backend = OpenAICompatibleBackend(
            base_url=f"http://127.0.0.1:{direct.sockets[0].getsockname()[1]}/v1",
            api_key=None,
            model="m",
            timeout=5,
        )
        try:
            reply = await backend.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        finally:
            await backend.aclose()
            proxy.close()
            direct.close()
        return reply.content

    assert asyncio.run(scenario()) == "via proxy"
    assert served == ["direct"]
    assert proxied == []

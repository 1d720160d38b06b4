"""The baselines: what a user would write instead of running textbatch.

Both read the same JSONL batch, render each line to the chat request the
service would send (``bench.workload.chat_payload``), send them with a
semaphore of the service's concurrency, parse each answer's JSON and write one
result line per input line to a JSONL file.

- ``naive``: ``httpx.AsyncClient`` and ``asyncio``;
- ``sdk``: the ``openai`` SDK's ``AsyncOpenAI``;
- ``aiohttp``: ``aiohttp.ClientSession`` and ``asyncio``, the cheapest plain client
  at hand: a reference for what the upstream allows on the machine, not a target.

Run as ``python -m bench.baselines naive|sdk|aiohttp --input IN --output OUT
--base-url URL --concurrency N``; it prints one JSON object with the wall time
it finished, so the harness can time it from the upstream's first call. With
``--cap S`` it stops after S seconds and reports how many lines it finished.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from bench.workload import chat_payload

Send = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass
class Progress:
    """Lines finished so far, and how many of them failed."""

    done: int = 0
    failed: int = 0
    last_at: float = 0.0


async def _run(
    lines: list[bytes], out: IO[bytes], send: Send, concurrency: int, model: str, progress: Progress
) -> None:
    """Send every line, at most ``concurrency`` at once, counting into ``progress``."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one(raw: bytes) -> None:
        async with semaphore:
            line = orjson.loads(raw)
            try:
                completion = await send(chat_payload(line["body"], model))
                answer = orjson.loads(completion["choices"][0]["message"]["content"])
                result: dict[str, Any] = {
                    "custom_id": line["custom_id"],
                    "response": {"status_code": 200, "body": completion},
                    "result": answer,
                    "error": None,
                }
            except (httpx.HTTPError, orjson.JSONDecodeError, KeyError) as exc:
                progress.failed += 1
                result = {"custom_id": line["custom_id"], "response": None, "error": str(exc)}
            out.write(orjson.dumps(result) + b"\n")
            progress.done += 1
            progress.last_at = time.time()

    await asyncio.gather(*(one(raw) for raw in lines))


async def run_naive(
    lines: list[bytes],
    out: IO[bytes],
    base_url: str,
    concurrency: int,
    model: str,
    progress: Progress,
) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def send(payload: dict[str, Any]) -> dict[str, Any]:
            response = await client.post(
                "/chat/completions",
                content=orjson.dumps(payload),
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()
            data: dict[str, Any] = orjson.loads(response.content)
            return data

        await _run(lines, out, send, concurrency, model, progress)


async def run_sdk(
    lines: list[bytes],
    out: IO[bytes],
    base_url: str,
    concurrency: int,
    model: str,
    progress: Progress,
) -> None:
    from openai import AsyncOpenAI, OpenAIError

    async with AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as client:

        async def send(payload: dict[str, Any]) -> dict[str, Any]:
            try:
                completion = await client.chat.completions.create(**payload)
            except OpenAIError as exc:
                raise httpx.HTTPError(str(exc)) from exc
            data: dict[str, Any] = completion.model_dump(mode="json", exclude_unset=True)
            return data

        await _run(lines, out, send, concurrency, model, progress)


async def run_aiohttp(
    lines: list[bytes],
    out: IO[bytes],
    base_url: str,
    concurrency: int,
    model: str,
    progress: Progress,
) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(payload: dict[str, Any]) -> dict[str, Any]:
            async with session.post(
                f"{base_url}/chat/completions",
                data=orjson.dumps(payload),
                headers={"content-type": "application/json"},
            ) as response:
                if response.status >= 400:
                    raise httpx.HTTPError(f"HTTP {response.status}")
                data: dict[str, Any] = orjson.loads(await response.read())
                return data

        await _run(lines, out, send, concurrency, model, progress)


RUNNERS = {"naive": run_naive, "sdk": run_sdk, "aiohttp": run_aiohttp}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a batch with a plain client script.")
    parser.add_argument("client", choices=sorted(RUNNERS))
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--cap", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args()
    started = time.time()
    lines = [raw for raw in args.input.read_bytes().splitlines() if raw.strip()]
    progress = Progress()
    capped = False
    with args.output.open("wb") as out:
        run = RUNNERS[args.client](
            lines, out, args.base_url, args.concurrency, args.model, progress
        )
        try:
            asyncio.run(asyncio.wait_for(run, args.cap))
        except TimeoutError:
            capped = True
    # A capped run ends with its last finished line, not with the cancelled calls unwinding.
    done_at = progress.last_at if capped else time.time()
    report = {
        "lines": len(lines),
        "done": progress.done,
        "failed": progress.failed,
        "started_at": started,
        "done_at": done_at,
    }
    print(orjson.dumps(report).decode(), flush=True)


if __name__ == "__main__":
    main()

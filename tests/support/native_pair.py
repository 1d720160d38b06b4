"""Two textbatches: a provider on its own Redis, and a client whose upstream it is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from standins.upstream import StandinUpstream
from tests.support.batches import line
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, start_service

MODEL = "standin-model"
# USD per million tokens; the client's batches are priced at half of this.
PRICES = {MODEL: {"input": 2.0, "output": 8.0}}


@dataclass
class NativePair:
    """``client`` sends native batches to ``provider``, which answers from a stand-in."""

    client: RunningService
    provider: RunningService
    upstream: StandinUpstream


@contextlib.contextmanager
def native_pair(
    redis_url: str,
    tmp_path: Path,
    upstream: StandinUpstream,
    upstream_key: str | None = None,
    provider_settings: dict[str, str] | None = None,
    **client_settings: str,
) -> Iterator[NativePair]:
    """Start the provider (its own Valkey) and the client; stop both afterwards."""
    prices = tmp_path / "prices.json"
    prices.write_bytes(orjson.dumps(PRICES))
    with real_redis() as provider_redis:
        provider_env = {
            "llm_base_url": upstream.base_url,
            "llm_model": MODEL,
            "price_table": str(prices),
            "chunk_size": "8",
            **({"llm_api_key": upstream_key} if upstream_key else {}),
            **(provider_settings or {}),
        }
        provider = start_service(
            provider_redis, tmp_path / "provider", log_dir=_logs(tmp_path, "p"), **provider_env
        )
        try:
            settings = {
                "llm_base_url": f"{provider.url}/v1",
                "llm_api_key": provider.keys[0],
                "llm_model": MODEL,
                "llm_batch": "native",
                "price_table": str(prices),
                "native_poll_max": "0.5",
                "llm_max_attempts": "2",
                "llm_backoff_base": "0.05",
                "chunk_size": "8",
                # The provider once more under a name, for ``peer/<model>`` pass-through lines.
                "upstreams": orjson.dumps(
                    {
                        "peer": {
                            "base_url": f"{provider.url}/v1",
                            "api_key": provider.keys[1],
                            "batch": "native",
                        }
                    }
                ).decode(),
                **client_settings,
            }
            client = start_service(
                redis_url, tmp_path / "client", log_dir=_logs(tmp_path, "c"), **settings
            )
            try:
                yield NativePair(client, provider, upstream)
            finally:
                client.stop()
        finally:
            provider.stop()


def _logs(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"logs-{name}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def task_lines(count: int, tag: str = "doc") -> list[dict[str, Any]]:
    """Lines of the three tasks and pass-through chat lines, in turn."""
    kinds: list[dict[str, Any]] = [
        {"model": "summarize", "text": "Shipment {n} left Rotterdam. It reaches Oslo on Monday."},
        {
            "model": "extract",
            "text": "Invoice {n} from Northwind Ltd to Acme Corp.",
            "entities": {"org": "a company"},
        },
        {
            "model": "classify",
            "text": "Ticket {n}: my parcel is late again.",
            "labels": [
                {"name": "late", "rubric": "Is a delivery late?"},
                {"name": "refund", "rubric": "Is a refund asked?"},
            ],
        },
        {"model": MODEL, "messages": [{"role": "user", "content": "Say hello to {n}."}]},
    ]
    lines = []
    for n in range(count):
        body = dict(kinds[n % len(kinds)])
        if "text" in body:
            body["text"] = str(body["text"]).format(n=n)
        else:
            body["messages"] = [{"role": "user", "content": f"Say hello to {n}."}]
        lines.append(line(f"{tag}-{n:04d}", body))
    return lines

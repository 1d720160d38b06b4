"""The chaos tests' marker, a deterministic upstream and helpers to watch a batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.upstream import StandinUpstream

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test under this folder is marked ``chaos``, so ``-m "not chaos"`` leaves out
    # the tests that kill, restart or starve a part of the service.
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="module")
def steady_upstream() -> Iterator[StandinUpstream]:
    """Deterministic answers after a short fixed delay, so a batch takes a few seconds."""
    with StandinUpstream(latency=0.05) as server:
        yield server


def completed_count(client: httpx.Client, batch_id: str) -> int:
    counts: dict[str, int] = client.get(f"/v1/batches/{batch_id}").json()["request_counts"]
    return counts["completed"] + counts["failed"]


def wait_for_count(client: httpx.Client, batch_id: str, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while completed_count(client, batch_id) < at_least:
        assert time.monotonic() < deadline, f"batch {batch_id} stuck below {at_least} lines"
        time.sleep(0.05)


def comparable(output: list[dict[str, Any]]) -> dict[str, Any]:
    """What must match between two runs of the same lines: per custom_id, the result."""
    by_id: dict[str, Any] = {}
    for item in output:
        response = item["response"]
        body = response["body"] if response else None
        by_id[item["custom_id"]] = (
            item["error"],
            body["choices"][0]["message"]["content"] if body else None,
            body["usage"] if body else None,
        )
    return by_id

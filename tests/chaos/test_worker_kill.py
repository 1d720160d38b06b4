"""kill -9 a worker mid-batch: a new worker finishes it, every result recorded exactly once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from standins.upstream import StandinUpstream
from tests.chaos.conftest import comparable, completed_count, wait_for_count
from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import start_service

LINES = 2000
HEARTBEAT_MS = 3000


def batch_lines(tag: str) -> list[dict[str, object]]:
    kinds = [
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
    ]
    lines = []
    for n in range(LINES):
        body = dict(kinds[n % 3])
        body["text"] = str(body["text"]).format(n=n)
        lines.append(line(f"{tag}-{n:04d}", body))
    return lines


@pytest.mark.timeout(240)
def test_killed_worker_loses_nothing_and_doubles_nothing(
    redis_url: str, steady_upstream: StandinUpstream, tmp_path: Path
) -> None:
    service = start_service(
        redis_url,
        tmp_path,
        llm_base_url=steady_upstream.base_url,
        llm_concurrency="32",
        chunk_size="16",
        heartbeat_timeout_ms=str(HEARTBEAT_MS),
    )
    try:
        with service.client() as client:
            # Given an undisturbed run of the same lines as the reference
            started = time.monotonic()
            reference = submit(client, batch_lines("same")).json()["id"]
            wait_finished(client, reference, timeout=120)
            undisturbed = time.monotonic() - started
            expected = comparable(output_lines(client, reference))
            steady_upstream.reset()

            # When the worker is killed with a quarter of a second run done
            batch_id = submit(client, batch_lines("same")).json()["id"]
            wait_for_count(client, batch_id, LINES // 4)
            service.workers[0].send_signal(signal.SIGKILL)
            service.workers[0].wait()
            killed_at = time.monotonic()
            done_at_kill = completed_count(client, batch_id)
            service.start_worker()
            batch = wait_finished(client, batch_id, timeout=120)
            # The dead worker's chunks are the last to finish: they wait for its heartbeat
            # to go stale before the broker hands them to the new worker.
            recovery = time.monotonic() - killed_at
            output = output_lines(client, batch_id)
    finally:
        service.stop()

    # Then the batch completes with each line once and the same results
    print(
        f"\nundisturbed run {undisturbed:.1f} s; kill -9 at {done_at_kill} lines done, "
        f"batch complete {recovery:.1f} s later (heartbeat timeout {HEARTBEAT_MS / 1000:.0f} s)"
    )
    assert batch["status"] == "completed"
    assert batch["request_counts"]["total"] == LINES
    assert batch["request_counts"]["completed"] + batch["request_counts"]["failed"] == LINES
    assert len(output) == LINES
    assert Counter(item["custom_id"] for item in output) == Counter(
        f"same-{n:04d}" for n in range(LINES)
    )
    assert comparable(output) == expected
    # Lines the dead worker had in flight ran again: at least once, recorded once.
    assert len(steady_upstream.calls) >= LINES


@pytest.mark.timeout(180)
def test_recovery_time_with_default_settings(redis_url: str, tmp_path: Path) -> None:
    """Every chunk is in the dead worker's hands, so the wait is the broker's recovery alone."""
    # Slow enough that the kill lands while every line is still waiting for its answer,
    # also on a loaded machine.
    with StandinUpstream(latency=3.0) as slow_upstream:
        service = start_service(
            redis_url, tmp_path, llm_base_url=slow_upstream.base_url, chunk_size="8"
        )
        try:
            with service.client() as client:
                lines = [
                    line(f"d-{n}", {"model": "summarize", "text": f"Note {n}."}) for n in range(32)
                ]
                batch_id = submit(client, lines).json()["id"]
                deadline = time.monotonic() + 10
                while len(slow_upstream.calls) < 32:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                service.workers[0].send_signal(signal.SIGKILL)
                service.workers[0].wait()
                killed_at = time.monotonic()
                service.start_worker()
                batch = wait_finished(client, batch_id, timeout=150)
                recovery = time.monotonic() - killed_at
        finally:
            service.stop()
    print(
        "\ndefault settings: a dead worker's 32 in-flight lines were finished "
        f"{recovery:.1f} s after kill -9"
    )
    assert batch["request_counts"]["completed"] == 32
    assert len(slow_upstream.calls) >= 64, "the lines in flight at the kill ran again"

"""kill -9 the API mid-submission: a batch exists whole or not at all, and nothing runs forever."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from standins.upstream import StandinUpstream
from tests.support.batches import line, wait_finished
from tests.support.service import RunningService, start_service


def slow_body(lines: int, stop: threading.Event) -> Iterator[bytes]:
    """A JSONL body that trickles in, so the API can be killed half-way through it."""
    for n in range(lines):
        if stop.is_set():
            return
        yield orjson.dumps(line(f"k-{n}", {"model": "summarize", "text": f"Line {n}."})) + b"\n"
        if n % 200 == 0:
            time.sleep(0.05)


def owned_batches(client: httpx.Client) -> list[dict[str, object]]:
    data: list[dict[str, object]] = client.get("/v1/batches", params={"limit": 100}).json()["data"]
    return data


def queued_messages(service: RunningService, redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        queue = service.env["TEXTBATCH_QUEUE_NAME"]
        return int(client.hlen(f"textbatch-queue:{queue}.msgs"))
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_api_killed_during_submission_leaves_no_batch(
    redis_url: str, steady_upstream: StandinUpstream, tmp_path: Path
) -> None:
    service = start_service(redis_url, tmp_path, llm_base_url=steady_upstream.base_url)
    try:
        stop = threading.Event()
        errors: list[Exception] = []

        def post() -> None:
            try:
                with service.client() as client:
                    client.post(
                        "/v1/batches",
                        content=slow_body(20_000, stop),
                        headers={"content-type": "application/jsonl"},
                    )
            except httpx.HTTPError as exc:
                errors.append(exc)

        sender = threading.Thread(target=post)
        sender.start()
        time.sleep(0.8)
        assert service.api is not None
        service.api.send_signal(signal.SIGKILL)
        service.api.wait()
        stop.set()
        sender.join(timeout=10)
        assert errors, "the submission cannot have succeeded: the API died under it"

        service.start_api()
        with service.client() as client:
            assert owned_batches(client) == []
        assert queued_messages(service, redis_url) == 0
        staging = redis.Redis.from_url(redis_url)
        try:
            for key in staging.scan_iter(match="textbatch:staging:*"):
                assert 0 < staging.ttl(key) <= 3600, "partial input expires on its own"
        finally:
            staging.close()
    finally:
        service.stop()


@pytest.mark.timeout(120)
def test_batch_committed_but_never_queued_is_queued_by_the_sweeper(
    redis_url: str, steady_upstream: StandinUpstream, tmp_path: Path
) -> None:
    """The API can die between storing a batch and queueing its chunks; workers notice."""
    service = start_service(
        redis_url,
        tmp_path,
        llm_base_url=steady_upstream.base_url,
        dispatch_grace="2",
        sweep_interval="0.5",
    )
    try:
        service.workers[0].send_signal(signal.SIGSTOP)  # hold the worker so nothing runs yet
        with service.client() as client:
            lines = [
                line(f"s-{n}", {"model": "summarize", "text": f"Text {n}."}) for n in range(50)
            ]
            body = b"".join(orjson.dumps(item) + b"\n" for item in lines)
            batch_id = client.post(
                "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
            ).json()["id"]
            # Remove its queued chunks, as if the API had died before queueing them.
            raw = redis.Redis.from_url(redis_url)
            try:
                queue = service.env["TEXTBATCH_QUEUE_NAME"]
                raw.delete(f"textbatch-queue:{queue}", f"textbatch-queue:{queue}.msgs")
                raw.zadd("textbatch:undispatched", {batch_id: int(time.time()) - 60})
            finally:
                raw.close()
            service.workers[0].send_signal(signal.SIGCONT)
            batch = wait_finished(client, batch_id, timeout=60)
        assert batch["status"] == "completed"
        assert batch["request_counts"]["completed"] == 50
    finally:
        service.stop()

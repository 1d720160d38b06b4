"""kill -9 a worker between a batch's end and its webhook's delivery: the event still arrives."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from standins.webhook_receiver import WebhookReceiver, unused_port
from tests.support.batches import line, submit, wait_finished
from tests.support.service import RunningService, start_service
from tests.support.webhooks import answered, register, verified

# Each attempt is bounded by this; a claim outlives it by the deliverer's margin (5 s).
ATTEMPT_SECONDS = 3


def quick_service(redis_url: str, data_dir: Path) -> RunningService:
    return start_service(
        redis_url,
        data_dir,
        webhook_allow_private="true",
        webhook_timeout=str(ATTEMPT_SECONDS),
        webhook_retry_base="0.2",
        webhook_retry_max="1",
        webhook_poll_interval="0.1",
    )


def finish_a_batch(client: httpx.Client) -> str:
    body = {"model": "summarize", "text": "The ferry left at noon."}
    batch_id: str = submit(client, [line("k", body)]).json()["id"]
    wait_finished(client, batch_id)
    return batch_id


def wait_for_attempt(client: httpx.Client, webhook_id: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        status = client.get(f"/v1/webhooks/{webhook_id}").json()["last_delivery_status"]
        if status is not None:
            return str(status)
        assert time.monotonic() < deadline, "no delivery was attempted"
        time.sleep(0.05)


def kill_worker_and_start_another(service: RunningService) -> None:
    service.workers[0].send_signal(signal.SIGKILL)
    service.workers[0].wait()
    service.start_worker()


@pytest.mark.timeout(120)
def test_event_survives_worker_kill_while_receiver_is_down(redis_url: str, tmp_path: Path) -> None:
    service = quick_service(redis_url, tmp_path)
    port = unused_port()
    try:
        with service.client() as client:
            # Given a receiver that is down when the batch ends
            hook = register(client, f"http://127.0.0.1:{port}/hook")
            batch_id = finish_a_batch(client)
            assert wait_for_attempt(client, hook["id"]) == "ConnectError"

            # When the worker is killed, another starts and the receiver comes back
            kill_worker_and_start_another(service)
            with WebhookReceiver(port) as receiver:
                deliveries = receiver.wait_for(1)
                time.sleep(1)
                deliveries = list(receiver.received)

        # Then the event arrives, once, signed
        (delivery,) = deliveries
        event = verified(hook["secret"], delivery)
        assert (event["type"], event["data"]["id"]) == ("batch.completed", batch_id)
    finally:
        service.stop()


@pytest.mark.timeout(120)
def test_delivery_held_by_killed_worker_is_taken_over_after_its_lease(
    redis_url: str, tmp_path: Path
) -> None:
    service = quick_service(redis_url, tmp_path)
    try:
        with WebhookReceiver() as receiver, service.client() as client:
            # Given a receiver that stalls on the first attempt
            receiver.hang_next = 30
            hook = register(client, receiver.url)
            batch_id = finish_a_batch(client)
            deadline = time.monotonic() + 30
            while not receiver.received:
                assert time.monotonic() < deadline, "no delivery was attempted"
                time.sleep(0.05)

            # When the worker holding that attempt is killed and another starts
            kill_worker_and_start_another(service)
            delivered = answered(receiver.wait_for(1, timeout=60))

        # Then the new worker sends it again once the lease ends, with the same id
        first, *_ = receiver.received
        (again,) = delivered
        assert again.headers["webhook-id"] == first.headers["webhook-id"]
        for delivery in (first, again):
            event = verified(hook["secret"], delivery)
            assert (event["type"], event["data"]["id"]) == ("batch.completed", batch_id)
    finally:
        service.stop()

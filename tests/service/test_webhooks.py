"""Webhooks: each batch end reaches its receiver once per id, signed, and only its key sees them."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from standins.upstream import StandinUpstream
from standins.webhook_receiver import WebhookReceiver
from tests.support.batches import line, submit, to_jsonl, wait_finished
from tests.support.service import RunningService, start_service
from tests.support.webhooks import delete_all, register, verified

MAX_WEBHOOKS = 3


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream(latency=0.3) as server:
        yield server


@pytest.fixture(scope="module")
def service(
    redis_url: str, slow_upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    logs = Path(tmp_path_factory.mktemp("webhook-logs"))
    running = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("webhook-service")),
        log_dir=logs,
        llm_base_url=slow_upstream.base_url,
        llm_concurrency="2",
        chunk_size="2",
        log_level="info",
        webhook_allow_private="true",
        webhook_retry_base="0.2",
        webhook_retry_max="0.5",
        webhook_poll_interval="0.1",
        max_webhooks_per_key=str(MAX_WEBHOOKS),
    )
    yield running
    running.stop()


@pytest.fixture
def client(service: RunningService) -> Iterator[httpx.Client]:
    with service.client() as owner_client:
        yield owner_client
        delete_all(owner_client)
    with service.client(service.keys[1]) as other:
        delete_all(other)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def summarize(custom_id: str) -> dict[str, Any]:
    return line(custom_id, {"model": "summarize", "text": "The ferry left at noon."})


def test_completed_batch_reaches_receiver_once_signed_with_the_batch_object(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(client, receiver.url)
    batch_id = submit(client, [summarize("a"), summarize("b")]).json()["id"]
    wait_finished(client, batch_id)

    (delivery,) = receiver.wait_for(1)
    event = verified(hook["secret"], delivery)
    assert delivery.path == "/hooks/textbatch"
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert delivery.headers["content-type"] == "application/json"
    assert event["type"] == "batch.completed"
    assert event["timestamp"].endswith("Z")
    assert event["data"] == client.get(f"/v1/batches/{batch_id}").json()
    assert event["data"]["request_counts"] == {
        "total": 2,
        "completed": 2,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    # Later rounds of the delivery loop send nothing more.
    time.sleep(1)
    assert len(receiver.received) == 1
    shown = client.get(f"/v1/webhooks/{hook['id']}").json()
    assert shown["last_delivery_status"] == "delivered"


def test_cancelled_batch_is_announced_as_batch_cancelled(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(client, receiver.url)
    batch_id = submit(client, [summarize(f"c-{n}") for n in range(20)]).json()["id"]
    assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
    assert wait_finished(client, batch_id)["status"] == "cancelled"

    (delivery,) = receiver.wait_for(1)
    event = verified(hook["secret"], delivery)
    assert event["type"] == "batch.cancelled"
    assert event["data"]["id"] == batch_id
    assert event["data"]["status"] == "cancelled"


def test_expired_batch_is_announced_as_batch_expired(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(client, receiver.url)
    response = client.post(
        "/v1/batches?completion_window=1s",
        content=to_jsonl([summarize(f"e-{n}") for n in range(20)]),
        headers={"content-type": "application/jsonl"},
    )
    batch_id = response.json()["id"]
    assert wait_finished(client, batch_id)["status"] == "expired"

    (delivery,) = receiver.wait_for(1)
    event = verified(hook["secret"], delivery)
    assert event["type"] == "batch.expired"
    assert event["data"]["status"] == "expired"


def test_webhook_gets_only_the_events_it_asked_for(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    with WebhookReceiver() as completions_only:
        failures = register(client, receiver.url, events=["batch.failed"])
        register(client, completions_only.url, events=["batch.completed"])
        # A file with a line that is not a request: the file flow makes a failed batch.
        uploaded = client.post(
            "/v1/files",
            files={"file": ("bad.jsonl", b'{"custom_id": "x"}\n', "application/jsonl")},
            data={"purpose": "batch"},
        ).json()
        batch = client.post(
            "/v1/batches",
            json={
                "input_file_id": uploaded["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ).json()
        assert batch["status"] == "failed"

        (delivery,) = receiver.wait_for(1)
        event = verified(failures["secret"], delivery)
        assert event["type"] == "batch.failed"
        assert event["data"]["id"] == batch["id"]
        assert event["data"]["errors"]["data"]
        time.sleep(1)
        assert completions_only.received == []


def test_receiver_answering_500_gets_retries_with_the_same_webhook_id(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500, 503]
    hook = register(client, receiver.url)
    batch_id = submit(client, [summarize("r")]).json()["id"]
    wait_finished(client, batch_id)

    deliveries = receiver.wait_for(1)
    assert [d.status for d in deliveries] == [500, 503, 200]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    for delivery in deliveries:
        assert verified(hook["secret"], delivery)["data"]["id"] == batch_id
    assert client.get(f"/v1/webhooks/{hook['id']}").json()["failed_deliveries"] == 0


def test_redirect_is_not_followed_but_retried(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    receiver.answers = [307]
    register(client, receiver.url)
    batch_id = submit(client, [summarize("redirect")]).json()["id"]
    wait_finished(client, batch_id)

    deliveries = receiver.wait_for(1)
    assert [d.status for d in deliveries] == [307, 200]
    assert {d.path for d in deliveries} == {"/hooks/textbatch"}


def test_receiver_answering_410_disables_the_webhook(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    receiver.answers = [410]
    hook = register(client, receiver.url)
    wait_finished(client, submit(client, [summarize("gone-1")]).json()["id"])
    deadline = time.monotonic() + 30
    while client.get(f"/v1/webhooks/{hook['id']}").json()["status"] != "disabled":
        assert time.monotonic() < deadline, "the webhook was not disabled"
        time.sleep(0.1)
    wait_finished(client, submit(client, [summarize("gone-2")]).json()["id"])
    time.sleep(1)
    assert [d.status for d in receiver.received] == [None]
    assert client.get(f"/v1/webhooks/{hook['id']}").json()["failed_deliveries"] == 1


def test_secret_is_shown_once_and_never_read_back_or_logged(
    service: RunningService, client: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(client, receiver.url)
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    wait_finished(client, submit(client, [summarize("s")]).json()["id"])
    receiver.wait_for(1)

    one = client.get(f"/v1/webhooks/{hook['id']}")
    listed = client.get("/v1/webhooks")
    assert "secret" not in one.json()
    assert [set(item) for item in listed.json()["data"]] == [set(one.json())]
    assert secret not in one.text + listed.text
    assert secret.removeprefix("whsec_") not in service.logs()


def test_another_key_cannot_see_or_delete_a_webhook(
    service: RunningService, client: httpx.Client, receiver: WebhookReceiver
) -> None:
    hook = register(client, receiver.url)
    with service.client(service.keys[1]) as other:
        assert other.get(f"/v1/webhooks/{hook['id']}").status_code == 404
        assert other.delete(f"/v1/webhooks/{hook['id']}").status_code == 404
        assert other.get("/v1/webhooks").json()["data"] == []
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 200
    deleted = client.delete(f"/v1/webhooks/{hook['id']}")
    assert deleted.json() == {"id": hook["id"], "object": "webhook", "deleted": True}
    assert client.get(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_events_default_to_all_four_and_an_unknown_one_is_refused(client: httpx.Client) -> None:
    hook = register(client, "http://127.0.0.1:9/hook")
    assert hook["events"] == ["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]
    response = client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["batch.done"]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "events.0"
    assert len(client.get("/v1/webhooks").json()["data"]) == 1


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/hook", "127.0.0.1/hook", "http:///hook", "http://user:pw@127.0.0.1/hook"],
)
def test_url_that_is_not_plain_http_is_refused(client: httpx.Client, url: str) -> None:
    response = client.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_webhook_url", "url")
    assert client.get("/v1/webhooks").json()["data"] == []


def test_a_key_may_have_only_so_many_webhooks(
    service: RunningService, client: httpx.Client
) -> None:
    for n in range(MAX_WEBHOOKS):
        register(client, f"http://127.0.0.1:9/hook-{n}")
    response = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/one-more"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_limit_reached"
    assert len(client.get("/v1/webhooks").json()["data"]) == MAX_WEBHOOKS
    with service.client(service.keys[1]) as other:
        register(other, "http://127.0.0.1:9/other-key")


def test_readme_verification_example_accepts_deliveries_and_refuses_forgeries(
    client: httpx.Client, receiver: WebhookReceiver
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Webhooks") : readme.index("## Configuration")]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)

    hook = register(client, receiver.url)
    batch_id = submit(client, [summarize("readme")]).json()["id"]
    wait_finished(client, batch_id)
    (delivery,) = receiver.wait_for(1)

    forged = delivery.body.replace(b"batch.completed", b"batch.cancelled")
    assert forged != delivery.body
    for check in (namespace["verified_event"], namespace["verified_event_stdlib"]):
        assert check(hook["secret"], delivery.headers, delivery.body)["data"]["id"] == batch_id
        with pytest.raises(Exception, match="signature"):
            check(hook["secret"], delivery.headers, forged)

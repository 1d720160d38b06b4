"""Webhook URLs reach public addresses only, unless private ones are allowed: at
registration, and again when a delivery is made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.webhook_receiver import WebhookReceiver
from tests.support.batches import line, submit, wait_finished
from tests.support.service import RunningService, start_service
from tests.support.webhooks import register


@pytest.fixture(scope="module")
def api_only(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The API with the default address rule; no worker is needed to register."""
    running = start_service(redis_url, Path(tmp_path_factory.mktemp("addresses")), workers=0)
    yield running
    running.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_private_address_is_refused_and_nothing_stored(api_only: RunningService, url: str) -> None:
    with api_only.client() as client:
        response = client.post("/v1/webhooks", json={"url": url})
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("webhook_url_not_allowed", "url")
        assert client.get("/v1/webhooks").json()["data"] == []


def test_unresolvable_host_is_refused(api_only: RunningService) -> None:
    with api_only.client() as client:
        response = client.post("/v1/webhooks", json={"url": "https://no-such-host.invalid/hook"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_url_unresolvable"


def test_public_address_is_accepted(api_only: RunningService) -> None:
    with api_only.client() as client:
        hook = register(client, "https://93.184.215.14:8443/hook")
        assert hook["url"] == "https://93.184.215.14:8443/hook"
        assert client.delete(f"/v1/webhooks/{hook['id']}").status_code == 200


def test_delivery_checks_the_address_again(redis_url: str, tmp_path: Path) -> None:
    # Registered while private addresses were allowed; the worker no longer allows them.
    service = start_service(redis_url, tmp_path, workers=0, webhook_allow_private="true")
    service.env["TEXTBATCH_WEBHOOK_ALLOW_PRIVATE"] = "false"
    service.env["TEXTBATCH_WEBHOOK_POLL_INTERVAL"] = "0.1"
    service.start_worker()
    try:
        with WebhookReceiver() as receiver, service.client() as client:
            hook = register(client, receiver.url)
            body = {"model": "summarize", "text": "The ferry left at noon."}
            wait_finished(client, submit(client, [line("p", body)]).json()["id"])
            deadline = time.monotonic() + 30
            while client.get(f"/v1/webhooks/{hook['id']}").json()["last_delivery_status"] is None:
                assert time.monotonic() < deadline, "no delivery was attempted"
                time.sleep(0.1)
            shown = client.get(f"/v1/webhooks/{hook['id']}").json()
            assert shown["last_delivery_status"] == "webhook_url_not_allowed"
            assert receiver.received == []
    finally:
        service.stop()

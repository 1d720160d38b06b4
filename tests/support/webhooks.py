"""Helpers to register webhooks and check deliveries as a receiver would."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from standins.webhook_receiver import Delivery


def register(client: httpx.Client, url: str, events: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def delete_all(client: httpx.Client) -> None:
    for hook in client.get("/v1/webhooks").json()["data"]:
        client.delete(f"/v1/webhooks/{hook['id']}")


def verified(secret: str, delivery: Delivery) -> dict[str, Any]:
    """The event, once its signature is checked twice: by an HMAC computed here, and by
    the ``standardwebhooks`` library a receiver would use."""
    headers = delivery.headers
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + delivery.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert expected in headers["webhook-signature"].split(" ")
    event: dict[str, Any] = Webhook(secret).verify(delivery.body, headers)
    assert event == orjson.loads(delivery.body)
    return event


def answered(deliveries: list[Delivery]) -> list[Delivery]:
    """The deliveries the receiver answered 2xx."""
    return [d for d in deliveries if d.status is not None and 200 <= d.status < 300]

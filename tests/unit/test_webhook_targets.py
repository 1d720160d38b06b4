"""Which webhook URLs and addresses may be called, and the ids and delays of deliveries."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import WebhookUrlRefused
from service.store.webhook_outbox import delivery_id
from service.worker.webhook_delivery import retry_delay
from service.worker.webhook_targets import is_public_address, parse_webhook_url, resolve_target


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fe80::1%eth0",
        "fd00::1",
        "::ffff:10.0.0.1",
        "::",
    ],
)
def test_non_public_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


def test_url_parts_and_default_ports() -> None:
    target = parse_webhook_url("HTTPS://Example.com/hooks?x=1")
    assert (target.scheme, target.host, target.port) == ("https", "example.com", 443)
    assert parse_webhook_url("http://example.com:8080/").port == 8080


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "http://", "http://example.com:99999/", "//example.com/x"]
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        parse_webhook_url(url)
    assert refused.value.code == "invalid_webhook_url"
    assert refused.value.param == "url"


def test_loopback_resolves_only_when_private_addresses_are_allowed() -> None:
    target = parse_webhook_url("http://127.0.0.1:9/hook")
    with pytest.raises(WebhookUrlRefused):
        asyncio.run(resolve_target(target, allow_private=False))
    assert asyncio.run(resolve_target(target, allow_private=True)).address == "127.0.0.1"


def test_delivery_id_is_fixed_by_event_and_webhook() -> None:
    first = delivery_id("batch_1", "batch.completed", "wh_1")
    assert first == delivery_id("batch_1", "batch.completed", "wh_1")
    assert first.startswith("msg_")
    others = {
        delivery_id("batch_2", "batch.completed", "wh_1"),
        delivery_id("batch_1", "batch.failed", "wh_1"),
        delivery_id("batch_1", "batch.completed", "wh_2"),
    }
    assert first not in others and len(others) == 3


def test_retry_delay_doubles_with_jitter_up_to_its_cap() -> None:
    for attempts, full in [(1, 5.0), (2, 10.0), (3, 20.0), (20, 3600.0), (500, 3600.0)]:
        delays = [retry_delay(attempts, 5.0, 3600.0) for _ in range(50)]
        assert all(full / 2 <= delay <= full for delay in delays)
        assert len(set(delays)) > 1

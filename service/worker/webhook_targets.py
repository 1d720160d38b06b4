"""Where a webhook may call: http(s) URLs whose host resolves to public addresses only.

A webhook URL is chosen by a client but called by the service, from inside its
network: without this check a client could make the service reach its Redis,
a cloud metadata endpoint or another internal host. The host is resolved and
every address must be global (not loopback, private, link-local, shared,
reserved or multicast), at registration and again at each delivery, which
then connects to the very address it checked (a name may resolve elsewhere a
second later). ``TEXTBATCH_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address rule,
for receivers on the same machine or network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.errors import WebhookUrlRefused

MAX_URL_CHARS = 2048
SCHEME_PORTS = {"http": 80, "https": 443}
# A name that takes longer to resolve is refused as not resolving.
RESOLVE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A webhook URL taken apart: what to connect to, and what to name in Host and TLS."""

    url: str
    scheme: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A target with the one checked address a delivery connects to."""

    target: WebhookTarget
    address: str


def parse_webhook_url(url: str) -> WebhookTarget:
    """The URL's parts; WebhookUrlRefused unless it is an absolute http(s) URL with a host."""
    if len(url) > MAX_URL_CHARS:
        raise WebhookUrlRefused(
            f"url may be at most {MAX_URL_CHARS} characters.", code="invalid_webhook_url"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookUrlRefused("url is not a valid URL.", code="invalid_webhook_url") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEME_PORTS:
        raise WebhookUrlRefused("url must be an http or https URL.", code="invalid_webhook_url")
    if not parts.hostname:
        raise WebhookUrlRefused("url must name a host.", code="invalid_webhook_url")
    # Credentials in a URL would be stored and shown back; a receiver checks the signature.
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlRefused(
            "url must not carry a user name or password; verify the signature instead.",
            code="invalid_webhook_url",
        )
    return WebhookTarget(url, scheme, parts.hostname, port or SCHEME_PORTS[scheme])


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_target(target: WebhookTarget, allow_private: bool) -> ResolvedTarget:
    """The address to connect to; WebhookUrlRefused if any address of the host is not public.

    All of them are checked, not only the one used: a name answering a public and a
    private address could otherwise be steered to the private one.
    """
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM
            )
    except (OSError, UnicodeError, TimeoutError):
        raise WebhookUrlRefused(
            f"The url's host '{target.host[:100]}' does not resolve.",
            code="webhook_url_unresolvable",
        ) from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise WebhookUrlRefused(
            f"The url's host '{target.host[:100]}' does not resolve.",
            code="webhook_url_unresolvable",
        )
    if not allow_private and not all(is_public_address(address) for address in addresses):
        raise WebhookUrlRefused(
            f"The url's host '{target.host[:100]}' is a loopback, private, link-local or "
            "other non-public address; webhooks call public addresses only "
            "(TEXTBATCH_WEBHOOK_ALLOW_PRIVATE=true allows them).",
        )
    return ResolvedTarget(target, addresses[0])

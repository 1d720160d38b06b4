"""One webhook attempt: the event signed as Standard Webhooks says, POSTed to a checked address.

The signature is ``standardwebhooks``'s: HMAC-SHA256 of ``{webhook-id}.{timestamp}.{body}``
keyed with the secret's decoded bytes, sent as ``v1,<base64>``. Each attempt is signed
with its own timestamp, since receivers refuse old ones; the id stays the same.
The request goes to the address ``webhook_targets`` checked, naming the URL's host in
``Host`` and in TLS, never follows a redirect and is bounded in time as a whole.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from service.worker.webhook_targets import ResolvedTarget

USER_AGENT = "textbatch-webhooks/1"


def signed_headers(secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of ``body``, signed at ``at``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
    }


def _pinned_url(resolved: ResolvedTarget) -> httpx.URL:
    return httpx.URL(resolved.target.url).copy_with(host=resolved.address)


async def post_event(
    client: httpx.AsyncClient,
    resolved: ResolvedTarget,
    secret: str,
    message_id: str,
    body: str,
    timeout: float,
) -> int:
    """POST the signed event; the receiver's status (its body is not read)."""
    target = resolved.target
    default_port = target.port == (443 if target.scheme == "https" else 80)
    headers = {
        "host": target.host if default_port else f"{target.host}:{target.port}",
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signed_headers(secret, message_id, body, datetime.now(UTC)),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    request = client.build_request(
        "POST", _pinned_url(resolved), content=body.encode(), headers=headers
    )
    request.extensions.update(extensions)
    async with asyncio.timeout(timeout):
        response = await client.send(request, follow_redirects=False, stream=True)
        await response.aclose()
    return response.status_code


def webhook_client(timeout: float) -> httpx.AsyncClient:
    """The client every attempt of a worker shares: no proxies from the environment (they
    would connect elsewhere than the checked address), no redirects, and no connection
    kept: pooled by address, one made for a host's TLS name could carry another's event."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
    )

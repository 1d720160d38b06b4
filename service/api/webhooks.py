"""``/v1/webhooks``: register, list, read and delete the caller's webhooks.

A webhook is called when one of the key's batches ends (see the README's
Webhooks section); its signing secret is in the answer that creates it and in
no other.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import AppState, JsonBody, PrincipalDep, StateDep, validated
from service.api.object_ids import known_webhook_id
from service.api.prompt_schemas import json_request_body
from service.api.schemas import ERROR_RESPONSES, BatchPublic
from service.ids import new_webhook_id
from service.llm.pricing import PriceTable, summarize_cost
from service.settings import Settings
from service.store.records import BatchRecord
from service.store.webhooks import WEBHOOK_EVENTS, WebhookRecord, WebhookStore
from service.worker.webhook_delivery import BatchRenderer
from service.worker.webhook_targets import parse_webhook_url, resolve_target

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

# Standard Webhooks asks for a secret of 24 to 64 random bytes.
SECRET_BYTES = 32
WebhookEvent = Literal["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]


class WebhookCreate(BaseModel):
    """A webhook to register: where to call, and for which events (all four by default)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(max_length=2048)
    events: list[WebhookEvent] | None = Field(default=None, min_length=1, max_length=16)


class WebhookPublic(BaseModel):
    """A webhook as the API shows it, without its secret."""

    id: str
    object: Literal["webhook"] = "webhook"
    url: str
    events: list[str]
    # "enabled", or "disabled" once its endpoint answered 410 Gone.
    status: str
    created_at: int
    last_delivery_at: int | None
    # "delivered", or what the last failed attempt gave (e.g. "HTTP 500").
    last_delivery_status: str | None
    # Deliveries given up after every retry, or refused with 410.
    failed_deliveries: int

    @classmethod
    def of(cls, record: WebhookRecord) -> WebhookPublic:
        return cls(
            id=record.id,
            url=record.url,
            events=list(record.events),
            status=record.status,
            created_at=record.created_at,
            last_delivery_at=record.last_delivery_at,
            last_delivery_status=record.last_delivery_status,
            failed_deliveries=record.failed_deliveries,
        )


class WebhookCreated(WebhookPublic):
    """The answer that creates a webhook: the only one carrying its signing secret."""

    secret: str


class WebhookList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WebhookPublic]


class WebhookDeleted(BaseModel):
    id: str
    object: Literal["webhook"] = "webhook"
    deleted: bool


def _store(state: AppState) -> WebhookStore:
    # Built from the batch store's pool and durability: the same connections and fsync wait.
    return WebhookStore(state.store.redis, state.store.durability)


@router.post("", response_model=WebhookCreated, openapi_extra=json_request_body(WebhookCreate))
async def create_webhook(
    state: StateDep, principal: PrincipalDep, body: JsonBody
) -> WebhookCreated:
    """Register a webhook; the answer carries its signing secret, shown this once."""
    payload = validated(WebhookCreate, body)
    target = parse_webhook_url(payload.url)
    await resolve_target(target, state.settings.webhook_allow_private)
    events: list[str] = list(payload.events or WEBHOOK_EVENTS)
    record = WebhookRecord(
        id=new_webhook_id(),
        owner=principal.owner,
        url=payload.url,
        # In the list's order, each once.
        events=tuple(event for event in WEBHOOK_EVENTS if event in events),
        secret="whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode(),
        created_at=int(time.time()),
    )
    await _store(state).register(record, state.settings.max_webhooks_per_key)
    return WebhookCreated(**WebhookPublic.of(record).model_dump(), secret=record.secret)


@router.get("", response_model=WebhookList)
async def list_webhooks(state: StateDep, principal: PrincipalDep) -> WebhookList:
    """The caller's webhooks, oldest first, without their secrets."""
    records = await _store(state).list_for(principal.owner)
    return WebhookList(data=[WebhookPublic.of(record) for record in records])


@router.get("/{webhook_id}", response_model=WebhookPublic)
async def retrieve_webhook(
    webhook_id: str, state: StateDep, principal: PrincipalDep
) -> WebhookPublic:
    """One webhook with its last delivery's outcome (404 when it is not the caller's)."""
    record = await _store(state).get(known_webhook_id(webhook_id), principal.owner)
    return WebhookPublic.of(record)


@router.delete("/{webhook_id}", response_model=WebhookDeleted)
async def delete_webhook(
    webhook_id: str, state: StateDep, principal: PrincipalDep
) -> WebhookDeleted:
    """Delete the webhook; deliveries to it not yet made are dropped."""
    await _store(state).delete(known_webhook_id(webhook_id), principal.owner)
    return WebhookDeleted(id=webhook_id, deleted=True)


def batch_renderer(settings: Settings) -> BatchRenderer:
    """The batch object deliveries carry, the same as ``GET /v1/batches/{id}`` answers."""
    prices = PriceTable.load(settings.price_table)

    def render(record: BatchRecord, tokens: dict[str, tuple[int, int]]) -> dict[str, Any]:
        cost = summarize_cost(tokens, prices, settings.batch_discount)
        return BatchPublic.from_record(record, cost).model_dump(mode="json")

    return render

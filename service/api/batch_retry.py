"""``POST /v1/batches/{id}/retry``: a new batch of a finished batch's lines that did not succeed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from service.api.batches import batch_view
from service.api.deps import ChoiceDep, PrincipalDep, StateDep, json_body, validated
from service.api.object_ids import known_batch_id
from service.api.schemas import ERROR_RESPONSES, BatchPublic
from service.intake.idempotency import check_key
from service.intake.retry import prepare_retry
from service.intake.submit import submit

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=ERROR_RESPONSES)

ErrorCode = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class BatchRetry(BaseModel):
    """Which lines to retry: by default every failed, expired and cancelled one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # Only lines whose ``error.code`` is one of these, e.g. ``upstream_timeout``,
    # ``batch_expired``, ``batch_cancelled``.
    codes: list[ErrorCode] | None = Field(default=None, min_length=1, max_length=100)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


@router.post(
    "/{batch_id}/retry",
    response_model=BatchPublic,
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": BatchRetry.model_json_schema()}},
        }
    },
)
async def retry_batch(
    batch_id: str,
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    provider: ChoiceDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> BatchPublic:
    """Run a finished batch's failed, expired and cancelled lines again, as a new batch.

    Same custom_ids, urls and bodies; ``metadata.retry_of`` names the original, whose
    ``retried_by`` lists the new batch. A running batch is a 409 ``batch_not_finished``,
    one with nothing to retry a 409 ``nothing_to_retry``. ``Idempotency-Key`` works as
    for ``POST /v1/batches``. The lines go to the original's provider unless the
    provider headers say otherwise; a batch that ran with a key of the caller's own is
    retried only with that key sent again (400 ``provider_key_required``).
    """
    key = check_key(idempotency_key) if idempotency_key is not None else None
    choice = BatchRetry()
    if _has_body(request):
        choice = validated(BatchRetry, await json_body(request, state))
    original = await state.store.get_batch(known_batch_id(batch_id), principal.owner)
    codes = frozenset(choice.codes) if choice.codes is not None else None
    prepared = await prepare_retry(
        state.store, state.results, original, codes, keyed=key is not None, choice=provider
    )
    record = await submit(state.submitter, state.idempotency, principal.owner, key, prepared)
    return await batch_view(state, record)

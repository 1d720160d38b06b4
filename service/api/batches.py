"""``/v1/batches``: submit, list, read, cancel and delete a batch, and stream its output."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from service.api.batch_intake import prepare_from_prompt, prepare_submission
from service.api.deps import AppState, ChoiceDep, JsonBody, PrincipalDep, StateDep
from service.api.object_ids import known_batch_id
from service.api.prompt_schemas import BatchFromPrompt, json_request_body
from service.api.schemas import (
    ERROR_RESPONSES,
    BatchCreate,
    BatchDeleted,
    BatchList,
    BatchPublic,
)
from service.errors import Conflict
from service.intake.idempotency import check_key
from service.intake.submit import Prepared, submit
from service.llm.pricing import summarize_cost
from service.store.batches import redis_unavailable_as_router_error
from service.store.merged_output import iter_merged_output, retry_chain
from service.store.native import provider_batches
from service.store.records import BatchRecord

# What a JSONL body is: OpenAPI has no schema for "lines of JSON", so the line's shape is
# described in words and by an example that the service accepts as it stands.
JSONL_BODY = {
    "schema": {
        "type": "string",
        "description": "One JSON request per line (JSONL): `custom_id`, `method` POST, `url` "
        "`/v1/chat/completions` and a `body` whose `model` is `extract`, `summarize`, "
        "`classify` or a pass-through model. CRLF and trailing blank lines are fine.",
    },
    "example": (
        '{"custom_id": "doc-1", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"model": "summarize", "text": "The council approved the budget on Monday."}}\n'
        '{"custom_id": "doc-2", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"model": "classify", "text": "I want my money back.", "labels": '
        '[{"name": "refund", "rubric": "Does the customer ask for money back?"}]}}\n'
    ),
}

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=ERROR_RESPONSES)


async def batch_view(state: AppState, record: BatchRecord) -> BatchPublic:
    tokens, cached = await state.results.usage_by_model(record.id)
    upstream_batches = None
    if record.lane == "native":
        with redis_unavailable_as_router_error():
            upstream_batches = await provider_batches(state.results.redis, record.id)
    return BatchPublic.from_record(
        record,
        summarize_cost(tokens, state.prices, state.settings.batch_discount, cached),
        upstream_batches,
    )


@router.post(
    "",
    response_model=BatchPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/jsonl": JSONL_BODY,
                "application/x-ndjson": JSONL_BODY,
                # Inlined: the route reads its body itself, so the model is not a component.
                "application/json": {"schema": BatchCreate.model_json_schema()},
            },
        }
    },
)
async def create_batch(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    choice: ChoiceDep,
    endpoint: Annotated[
        str | None, Query(max_length=64, description="Bind every JSONL line's url")
    ] = None,
    completion_window: Annotated[
        str | None, Query(max_length=16, description="e.g. 24h; at most 168h")
    ] = None,
    lane: Annotated[
        str | None, Query(max_length=16, description="direct or native (JSONL bodies)")
    ] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> BatchPublic:
    """Validate a whole submission, store it as one batch and queue its lines.

    With an ``Idempotency-Key`` header a retried request returns the batch the
    first one made; the same key with a different request is a 409.
    ``x-textbatch-provider`` and ``x-textbatch-provider-key`` pick the upstream of the
    lines whose model has no ``provider/`` prefix, and a key of the caller's own for it.
    """
    key = check_key(idempotency_key) if idempotency_key is not None else None
    prepared = await prepare_submission(
        request,
        state,
        principal.owner,
        endpoint,
        completion_window,
        lane=lane,
        keyed=key is not None,
        choice=choice,
    )
    return await _submit(state, principal.owner, key, prepared)


@router.post(
    "/from_prompt", response_model=BatchPublic, openapi_extra=json_request_body(BatchFromPrompt)
)
async def create_batch_from_prompt(
    state: StateDep,
    principal: PrincipalDep,
    choice: ChoiceDep,
    body: JsonBody,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> BatchPublic:
    """One line per variable set, each rendering the same stored prompt for the same model.

    Lines are ``row-1``, ``row-2``, … unless ``custom_ids`` names them. The prompt's
    version is pinned when the batch is made. ``Idempotency-Key`` works as for
    ``POST /v1/batches``.
    """
    key = check_key(idempotency_key) if idempotency_key is not None else None
    prepared = await prepare_from_prompt(state, principal.owner, body, choice)
    return await _submit(state, principal.owner, key, prepared)


async def _submit(state: AppState, owner: str, key: str | None, prepared: Prepared) -> BatchPublic:
    record = await submit(state.submitter, state.idempotency, owner, key, prepared)
    return await batch_view(state, record)


@router.get("", response_model=BatchList)
async def list_batches(
    state: StateDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> BatchList:
    """The caller's batches, newest first, a page at a time."""
    records, has_more = await state.store.list_batches(principal.owner, limit, after)
    data = [await batch_view(state, record) for record in records]
    return BatchList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=has_more,
    )


@router.get("/{batch_id}", response_model=BatchPublic)
async def retrieve_batch(batch_id: str, state: StateDep, principal: PrincipalDep) -> BatchPublic:
    """The batch's status and counts (404 when it is not the caller's)."""
    record = await state.store.get_batch(known_batch_id(batch_id), principal.owner)
    return await batch_view(state, record)


@router.post("/{batch_id}/cancel", response_model=BatchPublic)
async def cancel_batch(batch_id: str, state: StateDep, principal: PrincipalDep) -> BatchPublic:
    """Stop a running batch: lines not yet run are not sent upstream; finished ones are kept."""
    record = await state.store.request_cancel(
        known_batch_id(batch_id), principal.owner, int(time.time())
    )
    return await batch_view(state, record)


@router.delete("/{batch_id}", response_model=BatchDeleted)
async def delete_batch(batch_id: str, state: StateDep, principal: PrincipalDep) -> BatchDeleted:
    """Remove a finished batch and free its lines, results and output files at once.

    A batch still running is a 409 ``batch_running``: cancel it, then delete it once
    it has ended. Its input file is a file of its own and stays.
    """
    await state.removal.delete(known_batch_id(batch_id), principal.owner)
    return BatchDeleted(id=batch_id, deleted=True)


MAX_MERGED = 20


@router.get(
    "/{batch_id}/output",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/jsonl": {}}}},
)
async def batch_output(
    batch_id: str,
    state: StateDep,
    principal: PrincipalDep,
    partial: Annotated[
        bool, Query(description="While it runs: the lines finished so far, in input order")
    ] = False,
    merged_with: Annotated[
        list[str] | None,
        Query(
            max_length=MAX_MERGED,
            description="Retries of this batch (repeatable): each line's newest result",
        ),
    ] = None,
) -> StreamingResponse:
    """Every result line, in input order, streamed as JSONL once the batch has finished.

    ``partial=true`` streams what has finished so far while the batch runs, with
    ``x-textbatch-incomplete: true`` and ``x-textbatch-lines`` (lines finished when
    the answer began; a line finishing meanwhile may follow too). ``merged_with``
    names retries (``POST /v1/batches/{id}/retry``, and retries of those): each line
    is then the newest result any of them has for its custom_id.
    """
    record = await state.store.get_batch(known_batch_id(batch_id), principal.owner)
    running = not record.status.is_final
    if running and not partial:
        raise Conflict(
            f"Batch '{batch_id}' is {record.status.value}; "
            "its output is ready when it has finished (or ask for partial=true).",
            code="batch_not_finished",
        )
    total = record.counters["total"]
    headers = {
        "x-textbatch-incomplete": "true" if running else "false",
        "x-textbatch-lines": str(record.finished_lines),
    }
    if merged_with:
        retry_ids = [known_batch_id(retry_id) for retry_id in merged_with]
        chain = await retry_chain(state.store, principal.owner, record, retry_ids)
        retries = [(retry.id, retry.counters["total"]) for retry in chain]
        merged = iter_merged_output(state.results, batch_id, total, retries)
        return StreamingResponse(merged, media_type="application/jsonl", headers=headers)

    async def lines() -> AsyncIterator[bytes]:
        async for page in state.results.iter_output(batch_id, total):
            yield page

    return StreamingResponse(lines(), media_type="application/jsonl", headers=headers)

"""``/v1/batches``: submit, list, read, cancel a batch and stream its output."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from service.api.deps import AppState, PrincipalDep, StateDep
from service.api.schemas import BatchList, BatchPublic
from service.errors import (
    BatchRejected,
    Conflict,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from service.ingest import ingest_jsonl, ingest_requests, validate_metadata
from service.pricing import summarize_cost
from service.records import BatchRecord
from service.submission import BatchOptions, check_endpoint, window_seconds

router = APIRouter(prefix="/v1/batches", tags=["batches"])

JSONL_TYPES = frozenset(
    {
        "application/jsonl",
        "application/x-ndjson",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)
JSON_FIELDS = frozenset({"input_file_id", "requests", "endpoint", "completion_window", "metadata"})


async def batch_view(state: AppState, record: BatchRecord) -> BatchPublic:
    tokens = await state.results.tokens_by_model(record.id)
    return BatchPublic.from_record(
        record, summarize_cost(tokens, state.prices, state.settings.batch_discount)
    )


async def _read_json_body(request: Request, limit: int) -> Any:
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes, the limit.")
    try:
        return orjson.loads(received)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}.", param="body") from exc


def _options(payload: dict[str, Any], state: AppState) -> BatchOptions:
    unknown = sorted(set(payload) - JSON_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown field '{unknown[0]}'.", param=unknown[0])
    endpoint = payload.get("endpoint")
    window = payload.get("completion_window") or state.settings.completion_window
    window_seconds(window)
    input_file_id = payload.get("input_file_id")
    if input_file_id is not None and not isinstance(input_file_id, str):
        raise InvalidRequest("input_file_id must be a string.", param="input_file_id")
    return BatchOptions(
        endpoint=check_endpoint(endpoint) if endpoint is not None else None,
        completion_window=window,
        metadata=validate_metadata(payload.get("metadata")),
        input_file_id=input_file_id,
    )


async def _from_file(state: AppState, owner: str, options: BatchOptions) -> str:
    """The hosted-API flow: bad input makes a ``failed`` batch naming the faults, not a 400."""
    if options.endpoint is None:
        raise InvalidRequest("endpoint is required with input_file_id.", param="endpoint")
    assert options.input_file_id is not None
    record = await state.files.get(options.input_file_id, owner)
    if record.purpose != "batch":
        raise InvalidRequest(
            f"File '{record.id}' has purpose '{record.purpose}'; a batch input needs 'batch'.",
            param="input_file_id",
        )
    submitter = state.submitter
    try:
        staged = await ingest_jsonl(
            state.files.open_chunks(record),
            state.store,
            submitter.rules(options.endpoint),
            submitter.limits(),
        )
    except (BatchRejected, PayloadTooLarge) as exc:
        return await submitter.commit_rejected(owner, exc, options)
    except InvalidRequest as exc:
        if exc.code != "empty_batch":
            raise
        return await submitter.commit_rejected(owner, exc, options)
    return await submitter.commit(owner, staged, options)


@router.post(
    "",
    response_model=BatchPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/jsonl": {"schema": {"type": "string"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
            },
        }
    },
)
async def create_batch(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    endpoint: Annotated[str | None, Query(description="Bind every JSONL line's url")] = None,
    completion_window: Annotated[str | None, Query()] = None,
) -> BatchPublic:
    """Validate a whole submission, store it as one batch and queue its lines."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    submitter = state.submitter
    if content_type in JSONL_TYPES:
        options = _options({"endpoint": endpoint, "completion_window": completion_window}, state)
        staged = await ingest_jsonl(
            request.stream(), state.store, submitter.rules(options.endpoint), submitter.limits()
        )
        batch_id = await submitter.commit(principal.owner, staged, options)
    elif content_type == "application/json":
        payload = await _read_json_body(request, state.settings.max_body_bytes)
        if not isinstance(payload, dict):
            raise InvalidRequest("The JSON body must be an object.", param="body")
        options = _options(payload, state)
        if options.input_file_id is not None:
            batch_id = await _from_file(state, principal.owner, options)
        elif isinstance(payload.get("requests"), list):
            requests = payload["requests"]
            if len(requests) > state.settings.max_lines:
                raise PayloadTooLarge(
                    f"The batch has {len(requests)} lines; the limit is {state.settings.max_lines}."
                )
            staged = await ingest_requests(
                requests, state.store, submitter.rules(options.endpoint), submitter.limits()
            )
            batch_id = await submitter.commit(principal.owner, staged, options)
        else:
            raise InvalidRequest(
                "Send either input_file_id (an uploaded JSONL file) or a requests array.",
                param="requests",
            )
    else:
        raise UnsupportedMediaType(
            "Send the batch as JSONL (content-type application/jsonl or application/x-ndjson) "
            'or as JSON {"input_file_id": ...} or {"requests": [...]} (application/json).',
            param="content-type",
        )
    return await batch_view(state, await state.store.get_batch(batch_id, principal.owner))


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
    return await batch_view(state, await state.store.get_batch(batch_id, principal.owner))


@router.post("/{batch_id}/cancel", response_model=BatchPublic)
async def cancel_batch(batch_id: str, state: StateDep, principal: PrincipalDep) -> BatchPublic:
    """Stop a running batch: lines not yet run are not sent upstream; finished ones are kept."""
    record = await state.store.request_cancel(batch_id, principal.owner, int(time.time()))
    return await batch_view(state, record)


@router.get(
    "/{batch_id}/output",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/jsonl": {}}}},
)
async def batch_output(
    batch_id: str, state: StateDep, principal: PrincipalDep
) -> StreamingResponse:
    """Every result line, in input order, streamed as JSONL once the batch has finished."""
    record = await state.store.get_batch(batch_id, principal.owner)
    if not record.status.is_final:
        raise Conflict(
            f"Batch '{batch_id}' is {record.status.value}; "
            "its output is ready when it has finished.",
            code="batch_not_finished",
        )
    total = record.counters["total"]

    async def lines() -> AsyncIterator[bytes]:
        async for page in state.results.iter_output(batch_id, total):
            yield page

    return StreamingResponse(lines(), media_type="application/jsonl")

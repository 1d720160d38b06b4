"""``/v1/batches``: submit a batch, read its status, stream its output."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from service.api.deps import PrincipalDep, StateDep
from service.api.schemas import BatchPublic
from service.errors import Conflict, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from service.ids import new_batch_id
from service.ingest import (
    IngestLimits,
    StagedSubmission,
    ingest_jsonl,
    ingest_requests,
    validate_metadata,
)
from service.line_validation import LineRules
from service.records import NewBatch

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/batches", tags=["batches"])

JSONL_TYPES = frozenset(
    {
        "application/jsonl",
        "application/x-ndjson",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)
COMPLETION_WINDOW_SECONDS = 24 * 3600


def _limits(state: StateDep) -> IngestLimits:
    settings = state.settings
    return IngestLimits(settings.max_body_bytes, settings.max_lines, settings.max_line_bytes)


async def _read_json_body(request: Request, limit: int) -> object:
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes, the limit.")
    try:
        return orjson.loads(received)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}.", param="body") from exc


@router.post(
    "",
    response_model=BatchPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/jsonl": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/BatchRequestsCreate"}
                },
            },
        }
    },
)
async def create_batch(request: Request, state: StateDep, principal: PrincipalDep) -> BatchPublic:
    """Validate a whole submission, store it as one batch and queue its lines."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    rules = LineRules(max_text_chars=state.settings.max_text_chars)
    limits = _limits(state)
    metadata: dict[str, str] | None = None
    staged: StagedSubmission
    if content_type in JSONL_TYPES:
        staged = await ingest_jsonl(request.stream(), state.store, rules, limits)
    elif content_type == "application/json":
        payload = await _read_json_body(request, limits.max_body_bytes)
        if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
            raise InvalidRequest(
                "A JSON submission must be an object with a 'requests' array of request lines.",
                param="requests",
            )
        unknown = sorted(set(payload) - {"requests", "metadata"})
        if unknown:
            raise InvalidRequest(f"Unknown field '{unknown[0]}'.", param=unknown[0])
        metadata = validate_metadata(payload.get("metadata"))
        requests = payload["requests"]
        if len(requests) > limits.max_lines:
            raise PayloadTooLarge(
                f"The batch has {len(requests)} lines; the limit is {limits.max_lines}."
            )
        staged = await ingest_requests(requests, state.store, rules, limits)
    else:
        raise UnsupportedMediaType(
            "Send the batch as JSONL (content-type application/jsonl or application/x-ndjson) "
            'or as JSON {"requests": [...]} (application/json).',
            param="content-type",
        )
    now = int(time.time())
    batch = NewBatch(
        id=new_batch_id(),
        owner=principal.owner,
        total=staged.total,
        created_at=now,
        expires_at=now + COMPLETION_WINDOW_SECONDS,
        metadata=metadata,
    )
    await state.store.commit_batch(batch, staged.upload_id)
    await anyio.to_thread.run_sync(state.dispatcher.dispatch, batch.id, batch.total)
    await state.store.mark_dispatched(batch.id)
    log.info("batch %s accepted with %d lines", batch.id, batch.total)
    return BatchPublic.from_record(await state.store.get_batch(batch.id, principal.owner))


@router.get("/{batch_id}", response_model=BatchPublic)
async def retrieve_batch(batch_id: str, state: StateDep, principal: PrincipalDep) -> BatchPublic:
    """The batch's status and counts (404 when it is not the caller's)."""
    return BatchPublic.from_record(await state.store.get_batch(batch_id, principal.owner))


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
        async for page in state.store.iter_output(batch_id, total):
            yield page

    return StreamingResponse(lines(), media_type="application/jsonl")

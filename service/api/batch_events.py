"""``GET /v1/batches/{id}/events``: a batch's changes as Server-Sent Events, until it ends.

The batch's hash is read every ``POLL_SECONDS`` and the batch object sent when its
status, counts or timestamps moved: at most four events a second, however fast
lines finish, and nothing to set up in the workers or in Redis. Polling a hash
costs Redis one small read per watcher per tick; a pub/sub channel would need
every result script to publish, for no gain a user could see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from service.api.batches import batch_view
from service.api.deps import AppState, PrincipalDep, StateDep
from service.api.object_ids import known_batch_id
from service.api.schemas import ERROR_RESPONSES
from service.errors import TextbatchError
from service.store.records import BatchRecord

POLL_SECONDS = 0.25
# A comment line this often keeps proxies from closing a stream that is quiet.
PING_SECONDS = 15

router = APIRouter(prefix="/v1/batches", tags=["batches"], responses=ERROR_RESPONSES)


def _signature(record: BatchRecord) -> tuple[Any, ...]:
    """What a watcher sees change; the progress estimate alone is no reason to send."""
    return (
        record.status,
        tuple(sorted(record.counters.items())),
        tuple(sorted(record.timestamps.items(), key=lambda item: item[0])),
        tuple(record.retried_by),
    )


async def batch_events(
    state: AppState, owner: str, record: BatchRecord
) -> AsyncIterator[ServerSentEvent]:
    """``batch`` events while the batch changes, then one ``done`` with its final state."""
    sent: tuple[Any, ...] | None = None
    try:
        while True:
            if record.status.is_final:
                view = await batch_view(state, record)
                yield ServerSentEvent(data=view.model_dump_json(), event="done")
                return
            if _signature(record) != sent:
                sent = _signature(record)
                view = await batch_view(state, record)
                yield ServerSentEvent(data=view.model_dump_json(), event="batch")
            await asyncio.sleep(POLL_SECONDS)
            record = await state.store.get_batch(record.id, owner)
    except TextbatchError as exc:
        # Redis went away or the batch was deleted: say so, then end the stream.
        error = {"error": {"code": exc.code, "message": exc.message}}
        yield ServerSentEvent(data=orjson.dumps(error).decode(), event="error")


@router.get(
    "/{batch_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_batch(
    batch_id: str, state: StateDep, principal: PrincipalDep
) -> EventSourceResponse:
    """Server-Sent Events: ``batch`` (the batch object) whenever its status or counts
    change, at most four a second; then ``done`` with the final batch, and the stream
    ends. A batch already finished gets its ``done`` at once.
    """
    record = await state.store.get_batch(known_batch_id(batch_id), principal.owner)
    return EventSourceResponse(batch_events(state, principal.owner, record), ping=PING_SECONDS)

"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors

from service.api.deps import StateDep
from service.api.schemas import Health, Readiness
from service.llm.factory import backend_label
from service.store.disk import has_room
from service.store.redis_faults import is_disk_refusal

router = APIRouter(tags=["health"])

# Below this much free space under the data directory the service says it is not ready:
# an upload or the next AOF rewrite would fail.
MIN_FREE_BYTES = 1 << 20


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: StateDep) -> Readiness | JSONResponse:
    """Redis answers, both disks have room, the upstream answers; which backend is set."""
    label = backend_label(state.settings)
    data_dir = state.settings.data_dir
    redis_state, storage, message = "ok", "ok", None
    if not await anyio.to_thread.run_sync(has_room, data_dir, MIN_FREE_BYTES):
        storage, message = "full", f"The disk under the data directory {data_dir} is full."
    try:
        await state.store.redis.ping()
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        redis_state = "unreachable"
    except redis_errors.ResponseError as exc:
        if not is_disk_refusal(exc):
            raise
        redis_state, storage = "disk_full", "full"
        message = f"Redis cannot write to {state.store.durability.redis_dir}: its disk is full."
    upstream = "offline"
    if state.upstream_probe is not None:
        upstream = "ok" if await state.upstream_probe.answers() else "unreachable"
        if upstream != "ok" and message is None:
            message = "The default upstream does not answer (GET /models, 2 s)."
    if redis_state != "ok" or storage != "ok" or upstream == "unreachable":
        not_ready = Readiness(
            status="unavailable",
            redis=redis_state,
            llm_backend=label,
            storage=storage,
            upstream=upstream,
            message=message,
        )
        return JSONResponse(not_ready.model_dump(), status_code=503)
    return Readiness(status="ready", redis="ok", llm_backend=label, upstream=upstream)

"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors

from service.api.deps import StateDep
from service.api.schemas import Health, Readiness
from service.llm.factory import backend_label

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(state: StateDep) -> Readiness | JSONResponse:
    """Redis answers, and which LLM backend is configured."""
    label = backend_label(state.settings)
    try:
        await state.store.redis.ping()
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        return JSONResponse(
            Readiness(status="unavailable", redis="unreachable", llm_backend=label).model_dump(),
            status_code=503,
        )
    return Readiness(status="ready", redis="ok", llm_backend=label)

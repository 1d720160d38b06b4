"""Realtime routes: a task answered synchronously, or a request passed through upstream."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from service.api.deps import AppState, PrincipalDep, StateDep
from service.errors import InvalidRequest
from service.ids import new_completion_id
from service.line_validation import CHAT_COMPLETIONS, LineRules, validate_body
from tasks.execute import chat_completion_body, parse_task_body, run_task
from tasks.registry import get_task

router = APIRouter(prefix="/v1", tags=["realtime"])

RawBody = Body(..., media_type="application/json")


def _check(body: Any, state: AppState, url: str) -> None:
    rules = LineRules(
        max_text_chars=state.settings.max_text_chars,
        endpoint=url,
        route_fault=state.upstreams.route_fault,
    )
    faults = validate_body(body, rules, url=url)
    if faults:
        first = faults[0]
        param = first.param.removeprefix("body.") if first.param else None
        message = f"{param}: {first.message}" if param and param != "body" else first.message
        raise InvalidRequest(message, param=param)


async def _pass_through(state: AppState, url: str, body: dict[str, Any]) -> JSONResponse:
    status, answer, request_id = await state.upstreams.forward(url, body)
    headers = {"x-request-id": request_id} if request_id else None
    return JSONResponse(answer, status_code=status, headers=headers)


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    state: StateDep, principal: PrincipalDep, body: Any = RawBody
) -> dict[str, Any] | JSONResponse:
    """Run one extract / summarize / classify request now, or pass another model through."""
    _check(body, state, CHAT_COMPLETIONS)
    if get_task(str(body.get("model"))) is None:
        return await _pass_through(state, CHAT_COMPLETIONS, body)
    task, request = parse_task_body(body)
    outcome = await run_task(task, request, state.backend)
    return chat_completion_body(
        outcome,
        completion_id=new_completion_id(),
        created=int(time.time()),
        model_name=outcome.model,
    )


@router.post("/embeddings", response_model=None)
async def embeddings(state: StateDep, principal: PrincipalDep, body: Any = RawBody) -> JSONResponse:
    """Pass an embeddings request to the upstream its model names."""
    _check(body, state, "/v1/embeddings")
    return await _pass_through(state, "/v1/embeddings", body)


@router.post("/completions", response_model=None)
async def completions(
    state: StateDep, principal: PrincipalDep, body: Any = RawBody
) -> JSONResponse:
    """Pass a legacy completions request to the upstream its model names."""
    _check(body, state, "/v1/completions")
    return await _pass_through(state, "/v1/completions", body)

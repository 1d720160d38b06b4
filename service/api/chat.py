"""``POST /v1/chat/completions``: one task request answered synchronously."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Body

from service.api.deps import PrincipalDep, StateDep
from service.errors import InvalidRequest
from service.ids import new_completion_id
from service.line_validation import LineRules, validate_body
from tasks.execute import chat_completion_body, parse_task_body, run_task

router = APIRouter(prefix="/v1", tags=["chat"])


@router.post("/chat/completions")
async def chat_completions(
    state: StateDep,
    principal: PrincipalDep,
    body: Any = Body(...),  # noqa: B008 - FastAPI's way to take a raw JSON body
) -> dict[str, Any]:
    """Run one extract / summarize / classify request now; 502 if the upstream fails."""
    faults = validate_body(body, LineRules(max_text_chars=state.settings.max_text_chars))
    if faults:
        first = faults[0]
        param = first.param.removeprefix("body.") if first.param else None
        raise InvalidRequest(f"{param}: {first.message}" if param else first.message, param=param)
    task, request = parse_task_body(body)
    outcome = await run_task(task, request, state.backend)
    return chat_completion_body(
        outcome,
        completion_id=new_completion_id(),
        created=int(time.time()),
        model_name=outcome.model,
    )

"""Realtime routes: a task answered synchronously, or a request passed through upstream."""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import AppState, ChoiceDep, JsonBody, PrincipalDep, StateDep
from service.api.prompt_schemas import PROMPT_REFERENCE
from service.api.schemas import ERROR_RESPONSES
from service.auth import Principal
from service.errors import InvalidRequest, LineFault
from service.execution import respond, task_limits
from service.ids import new_completion_id
from service.intake.templates import ResolvedBody, names_prompt
from service.intake.validation import CHAT_COMPLETIONS, LineRules, validate_body
from service.llm.routing import ProviderChoice
from tasks.classify import ClassifyRequest
from tasks.extract import ExtractRequest
from tasks.summarize import SummarizeRequest

router = APIRouter(prefix="/v1", tags=["realtime"], responses=ERROR_RESPONSES)


def _task_schemas() -> list[dict[str, Any]]:
    classify = ClassifyRequest.model_json_schema()
    label = classify.pop("$defs")["LabelRubric"]
    classify["properties"]["labels"]["items"] = label
    return [ExtractRequest.model_json_schema(), SummarizeRequest.model_json_schema(), classify]


def _request_body(required: str, *, tasks: bool = False) -> dict[str, Any]:
    """An OpenAPI request body: a pass-through body, or (chat) also one of the task bodies."""
    passthrough = {
        "title": "PassThroughRequest",
        "description": "Sent as it is to the upstream the model names.",
        "type": "object",
        "required": ["model", required],
        "properties": {"model": {"type": "string", "minLength": 1}},
    }
    schema = {"anyOf": [*_task_schemas(), passthrough, PROMPT_REFERENCE]} if tasks else passthrough
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _check(body: Any, state: AppState, url: str, choice: ProviderChoice) -> None:
    upstreams = state.upstreams
    rules = LineRules(
        max_text_chars=state.settings.max_text_chars,
        max_output_tokens=state.settings.task_output_cap(),
        endpoint=url,
        route_fault=lambda model: upstreams.route_fault(model, choice),
    )
    faults = validate_body(body, rules, url=url)
    if faults:
        _refuse(faults[0])


def _refuse(fault: LineFault) -> NoReturn:
    """Answer a fault of a realtime body as a 400."""
    param = fault.param.removeprefix("body.") if fault.param else None
    message = f"{param}: {fault.message}" if param and param != "body" else fault.message
    raise InvalidRequest(message, param=param)


async def _resolved(state: AppState, principal: Principal, body: Any, url: str) -> Any:
    """The body with the prompt it names rendered into it; the body itself when it names none."""
    if not names_prompt(body):
        return body
    resolved = await state.submitter.prompt_resolver(principal.owner).resolve(body, url)
    if not isinstance(resolved, ResolvedBody):
        _refuse(resolved[0])
    return resolved.body


def _answer(status: int, answer: Any, request_id: str | None) -> JSONResponse:
    """An upstream's answer as it gave it: its status, its body, its request id."""
    headers = {"x-request-id": request_id} if request_id else None
    return JSONResponse(answer, status_code=status, headers=headers)


async def _pass_through(
    state: AppState, principal: Principal, body: Any, url: str, choice: ProviderChoice
) -> JSONResponse:
    """Check a pass-through body and send it to its upstream; a prompt it names is refused."""
    await _resolved(state, principal, body, url)
    _check(body, state, url, choice)
    return _answer(*await state.upstreams.forward(url, body, choice))


@router.post(
    "/chat/completions", response_model=None, openapi_extra=_request_body("messages", tasks=True)
)
async def chat_completions(
    state: StateDep, principal: PrincipalDep, choice: ChoiceDep, body: JsonBody
) -> dict[str, Any] | JSONResponse:
    """Run one extract / summarize / classify request now, or pass another model through.

    A body may name a stored prompt (``prompt_slug``) instead of giving ``messages``.
    """
    body = await _resolved(state, principal, body, CHAT_COMPLETIONS)
    _check(body, state, CHAT_COMPLETIONS, choice)
    response = await respond(
        CHAT_COMPLETIONS,
        body,
        backend=state.backend,
        upstreams=state.upstreams,
        limits=task_limits(state.settings),
        completion_id=new_completion_id(),
        choice=choice,
    )
    if response.passed_through:
        return _answer(response.status_code, response.body, response.request_id)
    body_out: dict[str, Any] = response.body
    return body_out


@router.post("/embeddings", response_model=None, openapi_extra=_request_body("input"))
async def embeddings(
    state: StateDep, principal: PrincipalDep, choice: ChoiceDep, body: JsonBody
) -> JSONResponse:
    """Pass an embeddings request to the upstream its model names."""
    return await _pass_through(state, principal, body, "/v1/embeddings", choice)


@router.post("/completions", response_model=None, openapi_extra=_request_body("prompt"))
async def completions(
    state: StateDep, principal: PrincipalDep, choice: ChoiceDep, body: JsonBody
) -> JSONResponse:
    """Pass a legacy completions request to the upstream its model names."""
    return await _pass_through(state, principal, body, "/v1/completions", choice)


@router.post("/responses", response_model=None, openapi_extra=_request_body("input"))
async def responses(
    state: StateDep, principal: PrincipalDep, choice: ChoiceDep, body: JsonBody
) -> JSONResponse:
    """Pass a Responses API request to the upstream its model names."""
    return await _pass_through(state, principal, body, "/v1/responses", choice)


@router.post("/moderations", response_model=None, openapi_extra=_request_body("input"))
async def moderations(
    state: StateDep, principal: PrincipalDep, choice: ChoiceDep, body: JsonBody
) -> JSONResponse:
    """Pass a moderations request to the upstream its model names."""
    return await _pass_through(state, principal, body, "/v1/moderations", choice)

"""One body to one response (a task, or a pass-through request), and a batch line's output line.

The realtime routes and the worker both answer a body through ``respond``, so the
choice between a task and a pass-through is made here alone.

A line's failure becomes that line's ``error``; nothing raised here may reach
the chunk, so one line never fails its neighbours.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from redis import exceptions as redis_errors

from service.errors import InvalidRequest, LLMError
from service.ids import derived_id
from service.llm.base import ChatBackend
from service.llm.call_gate import GateClosed
from service.llm.reply_reading import passthrough_usage
from service.llm.routing import NO_CHOICE, ProviderChoice, UpstreamRouter
from service.settings import Settings
from service.store.lifecycle import LineOutcome
from service.store.records import LineResult
from tasks.base import DEFAULT_LIMITS, TaskLimits
from tasks.execute import chat_completion_body, parse_task_body, run_task
from tasks.registry import get_task

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LineContext:
    """What a line needs to run: the task backend, the pass-through router, pricing names."""

    backend: ChatBackend
    upstreams: UpstreamRouter
    task_priced_model: str
    # The limits a task line was admitted under, so running it checks the same ones.
    limits: TaskLimits = DEFAULT_LIMITS
    # The batch's pick of upstream and the caller's key for it (the provider headers).
    choice: ProviderChoice = NO_CHOICE


def task_limits(settings: Settings) -> TaskLimits:
    """The task limits the service's settings set."""
    return TaskLimits(
        max_text_chars=settings.max_text_chars, max_output_tokens=settings.task_output_cap()
    )


def _output_line(
    batch_id: str, index: int, custom_id: str, response: Any, error: dict[str, Any] | None
) -> bytes:
    # Key order is part of the format: clients diff these files.
    return orjson.dumps(
        {
            "id": derived_id("batch_req_", batch_id, index),
            "custom_id": custom_id,
            "response": response,
            "error": error,
        }
    )


def error_line(
    batch_id: str,
    index: int,
    custom_id: str,
    code: str,
    message: str,
    attempts: int = 0,
    outcome: LineOutcome = LineOutcome.FAILED,
    usage: tuple[int, int, str] | None = None,
) -> LineResult:
    """The output line of a line that did not succeed.

    ``usage`` is ``(input_tokens, output_tokens, priced_model)`` of calls the upstream
    billed on the way to the failure.
    """
    error = {"code": code, "message": message, "attempts": attempts}
    input_tokens, output_tokens, priced_model = usage or (0, 0, "")
    return LineResult(
        index=index,
        output_line=_output_line(batch_id, index, custom_id, None, error),
        outcome=outcome,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        priced_model=priced_model,
    )


@dataclass(frozen=True, slots=True)
class Response:
    """One body's answer: what a realtime route sends back and a batch line records."""

    status_code: int
    body: Any
    request_id: str | None
    # True when the body went to an upstream as it is, not through one of our tasks.
    passed_through: bool
    input_tokens: int = 0
    output_tokens: int = 0
    # Input tokens the upstream read from its prompt cache (a part of ``input_tokens``).
    cached_tokens: int = 0
    # The name its tokens are priced under; empty: the caller decides.
    priced_model: str = ""


def is_task_body(body: dict[str, Any]) -> bool:
    """Whether the body names one of our tasks; anything else is passed through."""
    return get_task(str(body.get("model"))) is not None


async def respond(
    url: str,
    body: dict[str, Any],
    *,
    backend: ChatBackend,
    upstreams: UpstreamRouter,
    limits: TaskLimits,
    completion_id: str,
    choice: ProviderChoice = NO_CHOICE,
) -> Response:
    """Answer one body: run the task it names, or pass it to the upstream its model names.

    ``choice`` (the provider headers) picks the upstream of a task and of a bare model.
    """
    if is_task_body(body):
        task, request = parse_task_body(body, limits=limits)
        chosen = upstreams.task_backend(choice)
        outcome = await run_task(task, request, chosen or backend, limits=limits)
        completion = chat_completion_body(
            outcome,
            completion_id=completion_id,
            created=int(time.time()),
            model_name=outcome.model,
        )
        return Response(
            status_code=200,
            body=completion,
            request_id=outcome.request_id,
            passed_through=False,
            input_tokens=outcome.usage.prompt_tokens,
            output_tokens=outcome.usage.completion_tokens,
            priced_model=chosen.model if chosen is not None else "",
        )
    status, answer, request_id = await upstreams.forward(url, body, choice)
    usage = passthrough_usage(answer)
    return Response(
        status_code=status,
        body=answer,
        request_id=request_id,
        passed_through=True,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        priced_model=upstreams.priced_model(str(body.get("model", "")), choice),
    )


def _priced_model(body: dict[str, Any], passed_through: bool, context: LineContext) -> str:
    upstreams, choice = context.upstreams, context.choice
    if passed_through:
        return upstreams.priced_model(str(body.get("model", "")), choice)
    chosen = upstreams.task_backend(choice)
    return chosen.model if chosen is not None else context.task_priced_model


def _response_line(
    batch_id: str,
    index: int,
    custom_id: str,
    body: dict[str, Any],
    response: Response,
    context: LineContext,
) -> LineResult:
    wire = {
        "status_code": response.status_code,
        "request_id": response.request_id,
        "body": response.body,
    }
    succeeded = 200 <= response.status_code < 300
    error = None
    if not succeeded:
        error = {
            "code": "upstream_rejected",
            "message": f"The upstream answered {response.status_code}.",
        }
    return LineResult(
        index=index,
        output_line=_output_line(batch_id, index, custom_id, wire, error),
        outcome=LineOutcome.SUCCEEDED if succeeded else LineOutcome.FAILED,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        priced_model=response.priced_model or _priced_model(body, response.passed_through, context),
        cached_tokens=response.cached_tokens,
    )


def passthrough_line(
    batch_id: str,
    index: int,
    line: dict[str, Any],
    status_code: int,
    answer: dict[str, Any],
    context: LineContext,
) -> LineResult:
    """The output line of a pass-through line answered another way (an upstream batch)."""
    usage = passthrough_usage(answer)
    request_id = answer.get("id")
    response = Response(
        status_code=status_code,
        body=answer,
        request_id=request_id if isinstance(request_id, str) else None,
        passed_through=True,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
    )
    body = line.get("body")
    custom_id = str(line.get("custom_id", ""))
    return _response_line(
        batch_id, index, custom_id, body if isinstance(body, dict) else {}, response, context
    )


async def run_line(
    batch_id: str, index: int, line: dict[str, Any], context: LineContext
) -> LineResult:
    """Run one line; every outcome, success or failure, is a ``LineResult``."""
    custom_id = str(line.get("custom_id", ""))
    body = line.get("body")
    try:
        if not isinstance(body, dict):
            raise InvalidRequest("body must be an object", param="body")
        response = await respond(
            str(line.get("url", "/v1/chat/completions")),
            body,
            backend=context.backend,
            upstreams=context.upstreams,
            limits=context.limits,
            completion_id=derived_id("chatcmpl-", batch_id, index),
            choice=context.choice,
        )
        return _response_line(batch_id, index, custom_id, body, response, context)
    except GateClosed:
        raise  # the caller's own signal: it decides what the line's result is
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        raise  # the service's fault, not the line's: its chunk runs again later
    except LLMError as exc:
        priced = (
            _priced_model(body, not is_task_body(body), context) if isinstance(body, dict) else ""
        )
        billed = (exc.prompt_tokens, exc.completion_tokens, priced)
        return error_line(
            batch_id, index, custom_id, exc.code, exc.message, exc.attempts, usage=billed
        )
    except InvalidRequest as exc:
        return error_line(batch_id, index, custom_id, "invalid_request", exc.message)
    except (ValidationError, KeyError, ValueError) as exc:
        return error_line(batch_id, index, custom_id, "invalid_request", str(exc)[:500])
    except Exception:
        log.exception("line %d of batch %s failed unexpectedly", index, batch_id)
        return error_line(
            batch_id, index, custom_id, "internal_error", "The line failed inside the service."
        )

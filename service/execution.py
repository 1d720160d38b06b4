"""Runs one stored line, a task or a pass-through request, and shapes its output line.

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
from service.llm.routing import UpstreamRouter
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


async def _run_task_line(
    batch_id: str, index: int, custom_id: str, body: dict[str, Any], context: LineContext
) -> LineResult:
    task, request = parse_task_body(body, limits=context.limits)
    outcome = await run_task(task, request, context.backend, limits=context.limits)
    completion = chat_completion_body(
        outcome,
        completion_id=derived_id("chatcmpl-", batch_id, index),
        created=int(time.time()),
        model_name=outcome.model,
    )
    response = {"status_code": 200, "request_id": outcome.request_id, "body": completion}
    return LineResult(
        index=index,
        output_line=_output_line(batch_id, index, custom_id, response, None),
        outcome=LineOutcome.SUCCEEDED,
        input_tokens=outcome.usage.prompt_tokens,
        output_tokens=outcome.usage.completion_tokens,
        priced_model=context.task_priced_model,
    )


async def _run_passthrough_line(
    batch_id: str, index: int, custom_id: str, url: str, body: dict[str, Any], context: LineContext
) -> LineResult:
    status, answer, request_id = await context.upstreams.forward(url, body)
    response = {"status_code": status, "request_id": request_id, "body": answer}
    usage = answer.get("usage") if isinstance(answer, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    succeeded = 200 <= status < 300
    error = None
    if not succeeded:
        error = {"code": "upstream_rejected", "message": f"The upstream answered {status}."}
    return LineResult(
        index=index,
        output_line=_output_line(batch_id, index, custom_id, response, error),
        outcome=LineOutcome.SUCCEEDED if succeeded else LineOutcome.FAILED,
        input_tokens=_tokens(usage.get("prompt_tokens")),
        output_tokens=_tokens(usage.get("completion_tokens")),
        priced_model=str(body.get("model", "")),
    )


def _tokens(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


async def run_line(
    batch_id: str, index: int, line: dict[str, Any], context: LineContext
) -> LineResult:
    """Run one line; every outcome, success or failure, is a ``LineResult``."""
    custom_id = str(line.get("custom_id", ""))
    body = line.get("body")
    is_task = isinstance(body, dict) and get_task(str(body.get("model"))) is not None
    try:
        if not isinstance(body, dict):
            raise InvalidRequest("body must be an object", param="body")
        if is_task:
            return await _run_task_line(batch_id, index, custom_id, body, context)
        url = str(line.get("url", "/v1/chat/completions"))
        return await _run_passthrough_line(batch_id, index, custom_id, url, body, context)
    except GateClosed:
        raise  # the caller's own signal: it decides what the line's result is
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        raise  # the service's fault, not the line's: its chunk runs again later
    except LLMError as exc:
        model = body.get("model") if isinstance(body, dict) else ""
        priced = context.task_priced_model if is_task else str(model)
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

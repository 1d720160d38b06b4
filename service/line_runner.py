"""Runs one stored line through its task and shapes the output line, whatever happens.

A line's failure becomes that line's ``error``; nothing raised here may reach
the chunk, so one line never fails its neighbours.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from pydantic import ValidationError

from service.errors import LLMError
from service.llm.base import ChatBackend
from service.records import LineResult
from tasks.execute import chat_completion_body, parse_task_body, run_task

log = logging.getLogger(__name__)


def derived_id(prefix: str, batch_id: str, index: int) -> str:
    """An id fixed by batch and line, so a line run twice yields identical output."""
    digest = hashlib.blake2b(f"{batch_id}:{index}".encode(), digest_size=16).hexdigest()
    return f"{prefix}_{digest}"


def error_line(
    batch_id: str, index: int, custom_id: str, code: str, message: str, attempts: int = 0
) -> LineResult:
    """The output line of a line that did not succeed."""
    line = {
        "id": derived_id("batch_req", batch_id, index),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message, "attempts": attempts},
    }
    return LineResult(index=index, output_line=orjson.dumps(line), succeeded=False)


async def run_line(
    batch_id: str, index: int, line: dict[str, Any], backend: ChatBackend
) -> LineResult:
    """Run one line; every outcome, success or failure, is a ``LineResult``."""
    custom_id = str(line.get("custom_id", ""))
    try:
        task, request = parse_task_body(line["body"])
        outcome = await run_task(task, request, backend)
    except LLMError as exc:
        return error_line(batch_id, index, custom_id, exc.code, exc.message, exc.attempts)
    except (ValidationError, KeyError, ValueError) as exc:
        return error_line(batch_id, index, custom_id, "invalid_request", str(exc)[:500])
    except Exception:
        log.exception("line %d of batch %s failed unexpectedly", index, batch_id)
        return error_line(
            batch_id, index, custom_id, "internal_error", "The line failed inside the service."
        )
    body = chat_completion_body(
        outcome,
        completion_id=derived_id("chatcmpl", batch_id, index),
        created=int(time.time()),
        model_name=outcome.model,
    )
    output = {
        "id": derived_id("batch_req", batch_id, index),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": outcome.request_id, "body": body},
        "error": None,
    }
    return LineResult(
        index=index,
        output_line=orjson.dumps(output),
        succeeded=True,
        input_tokens=outcome.usage.prompt_tokens,
        output_tokens=outcome.usage.completion_tokens,
    )

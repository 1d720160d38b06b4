"""An upstream batch's result for one line, made into the line's output as the direct lane would.

A task answer is replayed through the task path (``ReplayingBackend``), so it is
read, validated, grounded and post-processed by the direct lane's code; a
pass-through answer is handed on as it came. What a direct call would have retried
(an upstream error for the line, a 429 or 5xx) is asked again directly.
"""

from __future__ import annotations

from typing import Any

from service.execution import LineContext, error_line, is_task_body, passthrough_line, run_line
from service.llm.native.base import NativeResult, NativeStatus
from service.llm.openai_compat import OpenAICompatibleBackend
from service.store.lifecycle import UPSTREAM_BATCH_EXPIRED, UPSTREAM_BATCH_FAILED, StopReason
from service.store.records import LineResult
from service.worker.native_calls import ReplayingBackend


async def answered_line(
    batch_id: str, index: int, line: dict[str, Any], result: NativeResult, context: LineContext
) -> LineResult:
    """The output of a line the upstream batch ran (``succeeded`` or ``errored``)."""
    body = line.get("body")
    if isinstance(body, dict) and is_task_body(body):
        assert isinstance(context.backend, OpenAICompatibleBackend)
        replaying = LineContext(
            backend=ReplayingBackend(context.backend, result),
            upstreams=context.upstreams,
            task_priced_model=context.task_priced_model,
            limits=context.limits,
        )
        return await run_line(batch_id, index, line, replaying)
    status = result.status_code
    if status is not None and (status == 429 or status >= 500):
        return await run_line(batch_id, index, line, context)
    if status is not None and result.body is not None:
        return passthrough_line(batch_id, index, line, status, result.body, context)
    message = f"The upstream batch could not run this line: {result.message[:300]}"
    return error_line(batch_id, index, custom_id(line), "upstream_error", message)


async def unfinished_line(
    batch_id: str,
    index: int,
    line: dict[str, Any],
    *,
    ours: StopReason | None,
    upstream: NativeStatus,
    fallback_direct: bool,
    context: LineContext,
) -> LineResult:
    """The output of a line its upstream batch ended without running."""
    if ours is not None:  # our cancel or expiry ended the upstream batch
        return stopped_line(batch_id, index, line, ours)
    if fallback_direct:
        return await run_line(batch_id, index, line, context)
    why = UPSTREAM_BATCH_EXPIRED if upstream is NativeStatus.EXPIRED else UPSTREAM_BATCH_FAILED
    return stopped_line(batch_id, index, line, why)


def stopped_line(batch_id: str, index: int, line: dict[str, Any], reason: StopReason) -> LineResult:
    code, message, outcome = reason
    return error_line(batch_id, index, custom_id(line), code, message, outcome=outcome)


def custom_id(line: dict[str, Any]) -> str:
    return str(line.get("custom_id", ""))

"""Run one task body against a chat backend: validate, prompt, check the answer, re-ask once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from service.errors import InvalidModelOutput
from service.llm.base import ChatBackend, ChatReply, ChatRequest, Usage
from tasks.base import LIMITS_CONTEXT_KEY, AnswerRejected, AnyTask, TaskLimits, TaskRequest
from tasks.base import UnknownTaskModel as UnknownTaskModel
from tasks.registry import TASKS, get_task

# Some models wrap JSON in a markdown fence even when told not to.
_FENCED_JSON = re.compile(r"^```[A-Za-z]*\s*\n?(?P<body>.*?)\n?\s*```$", re.DOTALL)

# How much of a rejected answer to show in the error message.
_ANSWER_EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """A task's result with the accounting of every model call it took."""

    result: dict[str, Any]
    model: str
    finish_reason: str
    usage: Usage
    attempts: int
    request_id: str | None


class _AnswerInvalid(Exception):
    """One answer could not be used; the message says why."""


def parse_task_body(
    body: Mapping[str, Any], *, limits: TaskLimits | None = None
) -> tuple[AnyTask, TaskRequest]:
    """The task a body names and its validated request.

    Raises ``UnknownTaskModel`` (a ``ValueError``) for a missing or unknown
    ``model`` and ``pydantic.ValidationError`` for a body that breaks the task's rules.
    """
    name = body.get("model")
    task = get_task(name) if isinstance(name, str) else None
    if task is None:
        raise UnknownTaskModel(f"model must be one of {', '.join(sorted(TASKS))}; got {name!r}")
    context = {LIMITS_CONTEXT_KEY: limits} if limits is not None else None
    request = task.request_model.model_validate(dict(body), context=context)
    return task, request


@lru_cache(maxsize=256)
def _validator_for(schema_json: bytes) -> Draft202012Validator:
    """A compiled validator per distinct schema; label sets repeat across a batch."""
    return Draft202012Validator(orjson.loads(schema_json))


def parse_answer(content: str) -> dict[str, Any]:
    """The JSON object in a reply, with or without a markdown fence around it."""
    text = content.strip()
    fenced = _FENCED_JSON.match(text)
    if fenced:
        text = fenced.group("body")
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise _AnswerInvalid(f"the answer is not JSON ({error})") from None
    if not isinstance(answer, dict):
        raise _AnswerInvalid("the answer is not a JSON object")
    return answer


def _result_of(
    task: AnyTask, request: TaskRequest, schema: dict[str, Any], reply: ChatReply
) -> dict[str, Any]:
    """The task result of one reply, or ``_AnswerInvalid`` saying why there is none."""
    answer = parse_answer(reply.content)
    validator = _validator_for(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    problem = next(iter(validator.iter_errors(answer)), None)
    if problem is not None:
        where = "/".join(str(part) for part in problem.absolute_path) or "the top level"
        raise _AnswerInvalid(f"the answer breaks the schema at {where}: {problem.message}")
    try:
        return task.postprocess(request, answer)
    except AnswerRejected as error:
        raise _AnswerInvalid(str(error)) from None


def _excerpt(content: str) -> str:
    if len(content) <= _ANSWER_EXCERPT_CHARS:
        return content
    return content[:_ANSWER_EXCERPT_CHARS] + "..."


def _with_correction(messages: list[dict[str, str]], problem: str) -> list[dict[str, str]]:
    """The messages again, the system message now saying why the last answer was unusable.

    The note goes into the system message rather than a new turn so the user
    message holding the text stays the last one, as it was on the first ask.
    """
    note = (
        f"\n\nA previous answer to this request could not be used: {problem}. "
        "Answer with one JSON object and nothing else, matching the JSON Schema above."
    )
    corrected = [dict(message) for message in messages]
    system = next((message for message in corrected if message["role"] == "system"), None)
    if system is None:
        return [{"role": "system", "content": note.strip()}, *corrected]
    system["content"] += note
    return corrected


async def run_task(task: AnyTask, request: TaskRequest, backend: ChatBackend) -> TaskOutcome:
    """Ask ``backend`` for the task's answer, re-asking once if the first is unusable.

    Raises ``InvalidModelOutput`` when the second answer is unusable too; any
    ``LLMError`` from the backend propagates as it is.
    """
    schema = task.output_schema(request)
    chat_request = ChatRequest(
        messages=task.render_messages(request),
        response_schema=schema,
        schema_name=task.name,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        max_tokens=task.max_tokens(request),
        task=task.name,
        task_input=request.model_dump(exclude_none=True),
    )
    first = await backend.complete(chat_request)
    try:
        return _outcome(task, request, schema, [first])
    except _AnswerInvalid as error:
        problem = _describe(error, first)
    retry_request = replace(chat_request, messages=_with_correction(chat_request.messages, problem))
    second = await backend.complete(retry_request)
    try:
        return _outcome(task, request, schema, [first, second])
    except _AnswerInvalid as error:
        raise InvalidModelOutput(
            f"the model gave no usable {task.name} answer in two tries; "
            f"last: {_describe(error, second)}; the answer began {_excerpt(second.content)!r}",
            attempts=first.attempts + second.attempts,
        ) from None


def _outcome(
    task: AnyTask, request: TaskRequest, schema: dict[str, Any], replies: list[ChatReply]
) -> TaskOutcome:
    """The outcome if the last reply is usable, with the accounting of all of them."""
    last = replies[-1]
    return TaskOutcome(
        result=_result_of(task, request, schema, last),
        model=last.model,
        finish_reason=last.finish_reason,
        usage=sum((reply.usage for reply in replies), Usage()),
        attempts=sum(reply.attempts for reply in replies),
        request_id=last.request_id,
    )


def _describe(error: _AnswerInvalid, reply: ChatReply) -> str:
    if reply.finish_reason == "length":
        return f"{error} (the answer was cut off at the token limit)"
    return str(error)


def chat_completion_body(
    outcome: TaskOutcome, *, completion_id: str, created: int, model_name: str
) -> dict[str, Any]:
    """An OpenAI-style ``chat.completion`` whose message content is the task result as JSON."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": orjson.dumps(outcome.result).decode()},
                "finish_reason": outcome.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": outcome.usage.prompt_tokens,
            "completion_tokens": outcome.usage.completion_tokens,
            "total_tokens": outcome.usage.total_tokens,
        },
    }

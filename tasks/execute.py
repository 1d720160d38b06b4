"""Run one task body against a chat backend: size the call, read the answer, re-ask when due.

Answers are read tolerantly: reasoning blocks are dropped and the first balanced
JSON object the task can use is the answer, whatever prose or fence surrounds it.
An unusable answer is asked again once with a note saying why; an answer cut off at
the output budget is asked again once with a larger budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from service.errors import InvalidModelOutput, LLMError, OutputTruncated
from service.llm.base import ChatBackend, ChatReply, ChatRequest, Usage
from tasks.answer_reading import answer_candidates, strip_reasoning
from tasks.answer_reading import parse_answer as parse_answer
from tasks.base import (
    DEFAULT_LIMITS,
    DEFAULT_SEED,
    DEFAULT_TEMPERATURE,
    LIMITS_CONTEXT_KEY,
    AnswerRejected,
    AnyTask,
    TaskLimits,
    TaskRequest,
)
from tasks.base import UnknownTaskModel as UnknownTaskModel
from tasks.extract import ExtractRequest, add_new_spans, in_offset_unit
from tasks.long_text import PASS_TEMPERATURE, first_failure_wins, plan_single_call, run_long
from tasks.outcome import TaskOutcome as TaskOutcome
from tasks.outcome import merged_outcome
from tasks.reasoning_allowance import learn_reasoning, reasoning_allowance
from tasks.registry import TASKS, get_task

# How much of a rejected answer to show in the error message.
_ANSWER_EXCERPT_CHARS = 200


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


def _result_of(task: AnyTask, request: TaskRequest, reply: ChatReply) -> dict[str, Any]:
    """The result of the first candidate object the task can use, or ``_AnswerInvalid``."""
    first_problem: str | None = None
    for answer in answer_candidates(reply.content):
        try:
            return task.postprocess(request, answer)
        except AnswerRejected as error:
            first_problem = first_problem or str(error)
    raise _AnswerInvalid(first_problem or "the answer holds no JSON object")


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


def output_cap(backend: ChatBackend, limits: TaskLimits) -> int:
    """The most output tokens a call may ask for: the service's cap, lowered by the backend's."""
    return max(1, min(limits.max_output_tokens, backend.output_token_cap))


def first_chat_request(task: AnyTask, request: TaskRequest, budget: int) -> ChatRequest:
    """The first call of a task: its prompt, schema, budget and deterministic defaults."""
    return ChatRequest(
        messages=task.render_messages(request),
        response_schema=task.output_schema(request),
        schema_name=task.name,
        temperature=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
        top_p=request.top_p,
        seed=DEFAULT_SEED if request.seed is None else request.seed,
        max_tokens=budget,
        task=task.name,
        task_input=request.model_dump(exclude_none=True),
    )


@dataclass(slots=True)
class _Calls:
    """The replies of one task run so far, for the accounting of its outcome or failure."""

    replies: list[ChatReply]

    @property
    def usage(self) -> Usage:
        return sum((reply.usage for reply in self.replies), Usage())

    @property
    def attempts(self) -> int:
        return sum(reply.attempts for reply in self.replies)

    def charge(self, error: LLMError) -> LLMError:
        """``error`` carrying the tokens of every call before it too.

        The tokens were billed whatever became of the line; ``attempts`` stays the
        count of the call that failed, as the backend reported it.
        """
        usage = self.usage
        error.prompt_tokens += usage.prompt_tokens
        error.completion_tokens += usage.completion_tokens
        return error

    def fail(self, error: LLMError) -> LLMError:
        """``error``, raised here about the answers, with the accounting of every call."""
        error.attempts = self.attempts
        return self.charge(error)

    async def ask(self, backend: ChatBackend, chat_request: ChatRequest) -> ChatReply:
        try:
            reply = await backend.complete(chat_request)
        except LLMError as error:
            raise self.charge(error) from None
        self.replies.append(reply)
        return reply


def _reasoned_away(reply: ChatReply) -> bool:
    """Whether a cut-off reply spent its whole budget before any JSON began."""
    return "{" not in strip_reasoning(reply.content)


def _larger_budget(reply: ChatReply, budget: int, cap: int) -> int:
    """The budget of the re-ask after a cut-off reply: double, or the cap if no answer began.

    A reply cut off before any JSON began spent its budget reasoning; doubling it
    would likely be spent the same way.
    """
    return cap if _reasoned_away(reply) else min(cap, budget * 2)


async def run_task(
    task: AnyTask,
    request: TaskRequest,
    backend: ChatBackend,
    *,
    limits: TaskLimits = DEFAULT_LIMITS,
) -> TaskOutcome:
    """The task's result for a text of any length (``tasks.long_text`` splits long ones).

    Raises as ``run_single`` does; a long text's error names the chunk that failed.
    """
    if isinstance(request, ExtractRequest):
        return await _run_extract(task, request, backend, limits)
    return await _run_any_length(task, request, backend, limits)


async def _run_any_length(
    task: AnyTask, request: TaskRequest, backend: ChatBackend, limits: TaskLimits
) -> TaskOutcome:
    cap = output_cap(backend, limits)
    context = backend.context_tokens
    if context is None:
        return await run_single(task, request, backend, limits)
    single_cap = plan_single_call(task, request, context, cap)
    if single_cap is not None:
        if single_cap < cap:
            limits = replace(limits, max_output_tokens=single_cap)
        return await run_single(task, request, backend, limits)
    return await run_long(task, request, backend, limits, cap, context, run_single)


async def _run_extract(
    task: AnyTask, request: ExtractRequest, backend: ChatBackend, limits: TaskLimits
) -> TaskOutcome:
    """extract in code points, once per pass (concurrently), then in the caller's unit.

    Later passes sample (``PASS_TEMPERATURE`` unless the line sets a temperature, and
    another seed) and add only spans that overlap none found before, as the first
    pass's reading wins. ``ungrounded`` is the first pass's.
    """
    first = request.model_copy(update={"offset_unit": "codepoint", "passes": 1})
    seed = DEFAULT_SEED if request.seed is None else request.seed
    temperature = PASS_TEMPERATURE if request.temperature is None else request.temperature
    runs = [first] + [
        first.model_copy(update={"temperature": temperature, "seed": seed + number})
        for number in range(1, request.passes)
    ]
    calls = [_run_any_length(task, run, backend, limits) for run in runs]
    outcomes = await first_failure_wins(calls, len(calls))
    entities = outcomes[0].result["entities"]
    for later in outcomes[1:]:
        entities = add_new_spans(entities, later.result["entities"])
    result = {"entities": entities, "ungrounded": outcomes[0].result.get("ungrounded", 0)}
    return merged_outcome(outcomes, in_offset_unit(request.text, result, request.offset_unit))


async def run_single(
    task: AnyTask, request: TaskRequest, backend: ChatBackend, limits: TaskLimits
) -> TaskOutcome:
    """Ask ``backend`` for the task's answer in one call, re-asking when it is unusable.

    An unusable answer is asked again once with a note; one cut off at the output
    budget (``finish_reason == "length"``) once with a larger budget, within the cap.
    Raises ``OutputTruncated`` or ``InvalidModelOutput`` when that did not help; an
    ``LLMError`` from the backend propagates, carrying the tokens of the calls before it.
    """
    cap = output_cap(backend, limits)
    budget = min(cap, task.output_budget(request, cap) + reasoning_allowance(backend))
    first_request = first_chat_request(task, request, budget)
    chat_request = first_request
    calls = _Calls([])
    corrected = enlarged = reasoned_away = False
    while True:
        reply = await calls.ask(backend, chat_request)
        try:
            outcome = _outcome(task, request, reply, calls)
        except _AnswerInvalid as error:
            problem = _describe(error, reply)
        else:
            if reasoned_away:
                learn_reasoning(backend, reply.usage.completion_tokens)
            return outcome
        if reply.finish_reason == "length":
            reasoned_away = reasoned_away or _reasoned_away(reply)
            larger = _larger_budget(reply, budget, cap)
            if enlarged or larger <= budget:
                raise calls.fail(
                    OutputTruncated(
                        f"the {task.name} answer was cut off at the output budget of "
                        f"{budget} tokens (the cap is {cap}); "
                        f"the answer began {_excerpt(reply.content)!r}",
                        attempts=0,
                    )
                )
            enlarged, budget = True, larger
            chat_request = replace(chat_request, max_tokens=budget)
            continue
        if corrected:
            raise calls.fail(
                InvalidModelOutput(
                    f"the model gave no usable {task.name} answer, also when asked again; "
                    f"last: {problem}; the answer began {_excerpt(reply.content)!r}",
                    attempts=0,
                )
            )
        corrected = True
        messages = _with_correction(first_request.messages, problem)
        chat_request = replace(chat_request, messages=messages)


def _outcome(task: AnyTask, request: TaskRequest, last: ChatReply, calls: _Calls) -> TaskOutcome:
    """The outcome if the last reply is usable, with the accounting of every call."""
    return TaskOutcome(
        result=_result_of(task, request, last),
        model=last.model,
        finish_reason=last.finish_reason,
        usage=calls.usage,
        attempts=calls.attempts,
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

"""Tasks over texts longer than the model's context: split the text, run each chunk, combine.

A call must hold the task's prompt, the text and the output budget within the
model's context (``ChatBackend.context_tokens``, counted with ``tasks.tokens``).
When the text does not fit it is split (``tasks.chunking``) and:

- extract runs on every chunk; each chunk's mentions are grounded in the chunk,
  shifted to offsets of the whole text, and a mention found twice in an overlap is
  kept once (the longer span of two that overlap with the same type);
- classify runs on every chunk; a label matches if any chunk matches, unless the
  label asks for ``"aggregate": "all"`` or ``"majority"``;
- summarize maps every chunk to a summary of its part, then summarises the parts
  together, again until they fit one call; the last call honours the line's
  ``max_tokens`` and ``instructions``.

The chunks of a line run concurrently through the same backend, and so within the
same upstream limit and priority as every other call. A chunk the server still
finds too long, or whose answer is cut off at its output budget (a chunk dense
with entities), is split in two and run again. If any chunk finally fails, the line
fails with that chunk's error, which says which chunk; usage counts every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from service.errors import ContextLengthExceeded, LLMError, OutputTruncated
from service.llm.base import ChatBackend, Usage
from tasks.base import AnyTask, TaskLimits, TaskRequest
from tasks.chunking import Chunk, split_text
from tasks.extract import merge_entities
from tasks.outcome import TaskOutcome, merged_outcome
from tasks.tokens import estimate_tokens, tokens_at_most

# What ``tasks.execute`` passes in: one call's worth of task, with its re-asks.
SingleRun = Callable[[AnyTask, TaskRequest, ChatBackend, TaskLimits], Awaitable[TaskOutcome]]

# Share of the context a call may fill by estimate: chat templates add tokens of their
# own, and an estimate is an estimate.
CONTEXT_SHARE = 0.9
MESSAGE_TOKENS = 8
# The output budget of one chunk's call: at most this share of the usable context.
CHUNK_OUTPUT_SHARE = 4
MIN_CHUNK_TOKENS = 64
OVERLAP_SHARE = 10
MAX_OVERLAP_TOKENS = 200
# A chunk the server still finds too long is halved, at most this many times.
MAX_RESPLITS = 4
# A part's summary is at most this share of its chunk, so each round shrinks the text.
PART_SUMMARY_SHARE = 4
MAX_PART_SUMMARY_TOKENS = 512
PART_INSTRUCTIONS = (
    "This text is one part of a longer document. Summarise this part only, keeping "
    "every name, number, date and decision it states; another step joins the parts."
)
# Later extraction passes sample, so they can find what the first pass missed.
PASS_TEMPERATURE = 0.5


@dataclass(frozen=True, slots=True)
class _Budget:
    """How a task's calls fit the context: the room for text and the output cap of each."""

    usable: int
    overhead: int
    output_cap: int

    @property
    def text_room(self) -> int:
        return self.usable - self.overhead - self.output_cap


def prompt_overhead(task: AnyTask, request: TaskRequest) -> int:
    """Tokens of the task's prompt around the text: its messages with an empty text.

    Lines of a batch mostly share labels and instructions, so the count is kept per
    task and request-without-text: rendering and counting the prompt again for every
    line cost about as much as the rest of a line's work.
    """
    key = (task.name, request.model_dump_json(exclude={"text"}))
    known = _OVERHEADS.get(key)
    if known is not None:
        return known
    empty = request.model_copy(update={"text": ""})
    messages = task.render_messages(empty)
    tokens = sum(estimate_tokens(message["content"]) + MESSAGE_TOKENS for message in messages)
    if len(_OVERHEADS) >= _MAX_OVERHEADS:
        _OVERHEADS.clear()
    _OVERHEADS[key] = tokens
    return tokens


# Prompt overheads by (task, request without its text); cleared when full, so a stream of
# distinct requests costs one render each and no unbounded memory.
_OVERHEADS: dict[tuple[str, str], int] = {}
_MAX_OVERHEADS = 1024


def plan_single_call(task: AnyTask, request: TaskRequest, context: int, cap: int) -> int | None:
    """The output cap of one call holding the whole text, or ``None`` when it must be split."""
    usable = int(context * CONTEXT_SHARE)
    wanted = task.output_budget(request, cap)
    room_left = usable - prompt_overhead(task, request)
    if room_left - tokens_at_most(request.text) >= wanted:
        return cap
    room = room_left - estimate_tokens(request.text)
    if room >= wanted:
        return cap
    # A smaller budget still fits: fine as long as it leaves the answer a fair share.
    if room >= min(wanted, usable // CHUNK_OUTPUT_SHARE):
        return room
    return None


async def run_long(
    task: AnyTask,
    request: TaskRequest,
    backend: ChatBackend,
    limits: TaskLimits,
    cap: int,
    context: int,
    run_single: SingleRun,
) -> TaskOutcome:
    """Run ``task`` over a text that does not fit one call of a ``context``-token model."""
    usable = int(context * CONTEXT_SHARE)
    budget = _Budget(usable, prompt_overhead(task, request), min(cap, usable // CHUNK_OUTPUT_SHARE))
    if budget.text_room < MIN_CHUNK_TOKENS:
        raise ContextLengthExceeded(
            f"the model's context of {context} tokens cannot hold the {task.name} prompt "
            f"({budget.overhead} tokens) with room for a text and an answer; "
            "raise TEXTBATCH_LLM_CONTEXT_TOKENS if the model takes more"
        )
    runner = _ChunkRunner(task, backend, limits, budget, run_single, context, cap)
    if task.name == "summarize":
        return await _summarize(runner, request)
    chunks = runner.split(request.text)
    outcomes = await runner.run_all(request, chunks)
    if task.name == "extract":
        return merged_outcome(outcomes, merge_extracts(chunks, outcomes))
    return merged_outcome(outcomes, aggregate_labels(request, outcomes))


class _ChunkRunner:
    """Runs one task's request over chunks of a text, concurrently, re-splitting on demand."""

    def __init__(
        self,
        task: AnyTask,
        backend: ChatBackend,
        limits: TaskLimits,
        budget: _Budget,
        run_single: SingleRun,
        context: int,
        cap: int,
    ) -> None:
        self.task = task
        self.context = context
        self.cap = cap
        self.backend = backend
        self.limits = replace(limits, max_output_tokens=budget.output_cap)
        self.budget = budget
        self.run_single = run_single

    def split(self, text: str, room: int | None = None) -> list[Chunk]:
        room = room or self.budget.text_room
        overlap = min(MAX_OVERLAP_TOKENS, room // OVERLAP_SHARE)
        return split_text(text, room, overlap)

    async def run_all(
        self, request: TaskRequest, chunks: Sequence[Chunk], **changes: Any
    ) -> list[TaskOutcome]:
        """One outcome per chunk, in order; the first chunk to fail fails them all."""
        calls = [self._run(request, chunk, chunks, **changes) for chunk in chunks]
        return await first_failure_wins(calls, len(chunks))

    async def _run(
        self, request: TaskRequest, chunk: Chunk, chunks: Sequence[Chunk], **changes: Any
    ) -> TaskOutcome:
        sub_request = request.model_copy(update={"text": chunk.text, **changes})
        try:
            return await self._run_piece(sub_request, self.budget.text_room, 0)
        except LLMError as error:
            error.message = (
                f"chunk {chunk.index + 1} of {len(chunks)} "
                f"(characters {chunk.start}-{chunk.end}): {error.message}"
            )
            error.args = (error.message,)
            raise

    async def _run_piece(self, request: TaskRequest, room: int, depth: int) -> TaskOutcome:
        try:
            return await self.run_single(self.task, request, self.backend, self.limits)
        except (ContextLengthExceeded, OutputTruncated) as error:
            if depth >= MAX_RESPLITS or len(request.text) < 2:
                raise
            spent = Usage(error.prompt_tokens, error.completion_tokens)
        # The estimate was low for this text, or it holds more than one answer can list:
        # halve it and run the halves as one piece.
        halves = self.split(request.text, max(MIN_CHUNK_TOKENS, room // 2))
        if len(halves) < 2:
            halves = _halved(request.text)
        pieces = [
            self._run_piece(request.model_copy(update={"text": half.text}), room // 2, depth + 1)
            for half in halves
        ]
        outcomes = await first_failure_wins(pieces, len(halves))
        merged = self._combine_pieces(request, halves, outcomes)
        return replace(merged, usage=merged.usage + spent)

    def _combine_pieces(
        self, request: TaskRequest, halves: Sequence[Chunk], outcomes: list[TaskOutcome]
    ) -> TaskOutcome:
        if self.task.name == "extract":
            # The halves' offsets are relative to this piece; its own caller shifts them.
            return merged_outcome(outcomes, merge_extracts(halves, outcomes))
        if self.task.name == "classify":
            return merged_outcome(outcomes, aggregate_labels(request, outcomes))
        summary = "\n\n".join(str(outcome.result.get("summary", "")) for outcome in outcomes)
        return merged_outcome(outcomes, {"summary": summary})


def _halved(text: str) -> list[Chunk]:
    middle = len(text) // 2
    return [Chunk(0, 0, middle, text[:middle]), Chunk(1, middle, len(text), text[middle:])]


async def first_failure_wins(
    calls: Sequence[Coroutine[Any, Any, TaskOutcome]], count: int
) -> list[TaskOutcome]:
    """Run ``calls`` concurrently; on a failure cancel the rest and raise the first failure.

    A failure that is not an ``LLMError`` (the batch was cancelled, a service fault)
    wins over a line's error, as it is not the line's to report. The tokens of the
    calls that finished are added to the error, as they were billed.
    """
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        done = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        foreign = [f for f in failures if not isinstance(f, LLMError | asyncio.CancelledError)]
        if foreign:
            raise foreign[0] from None
        line_errors = [f for f in failures if isinstance(f, LLMError)]
        if not line_errors:
            raise
        error = line_errors[0]
        finished = sum((r.usage for r in results if isinstance(r, TaskOutcome)), Usage())
        error.prompt_tokens += finished.prompt_tokens
        error.completion_tokens += finished.completion_tokens
        raise error from None
    assert len(done) == count
    return list(done)


def merge_extracts(chunks: Sequence[Chunk], outcomes: Sequence[TaskOutcome]) -> dict[str, Any]:
    """The chunks' entities on the whole text (code points), each found once, in order."""
    found: list[dict[str, Any]] = []
    ungrounded = 0
    for chunk, outcome in zip(chunks, outcomes, strict=True):
        ungrounded += int(outcome.result.get("ungrounded", 0))
        for entity in outcome.result.get("entities", []):
            shifted = {**entity, "start": entity["start"] + chunk.start}
            shifted["end"] = entity["end"] + chunk.start
            found.append(shifted)
    return {"entities": merge_entities(found), "ungrounded": ungrounded}


def aggregate_labels(request: TaskRequest, outcomes: Sequence[TaskOutcome]) -> dict[str, Any]:
    """Each label's verdict over the chunks: any (the default), all, or a majority."""
    labels = getattr(request, "labels", [])
    verdicts: dict[str, list[bool]] = {label.name: [] for label in labels}
    for outcome in outcomes:
        for item in outcome.result.get("labels", []):
            if item.get("name") in verdicts:
                verdicts[item["name"]].append(bool(item.get("match")))
    result = []
    for label in labels:
        votes = verdicts[label.name]
        rule = getattr(label, "aggregate", "any")
        if rule == "all":
            match = bool(votes) and all(votes)
        elif rule == "majority":
            match = sum(votes) * 2 > len(votes)
        else:
            match = any(votes)
        result.append({"name": label.name, "match": match})
    return {"labels": result}


async def _summarize(runner: _ChunkRunner, request: TaskRequest) -> TaskOutcome:
    """Map every chunk to a summary of its part, then reduce the parts until they fit."""
    spent: list[TaskOutcome] = []
    text = request.text
    part_tokens = max(
        16, min(MAX_PART_SUMMARY_TOKENS, runner.budget.text_room // PART_SUMMARY_SHARE)
    )
    while True:
        chunks = runner.split(text)
        parts = await runner.run_all(
            request, chunks, instructions=PART_INSTRUCTIONS, max_tokens=part_tokens
        )
        spent.extend(parts)
        shorter = "\n\n".join(str(part.result.get("summary", "")).strip() for part in parts)
        final_request = request.model_copy(update={"text": shorter})
        final_cap = plan_single_call(runner.task, final_request, runner.context, runner.cap)
        if final_cap is not None:
            limits = replace(runner.limits, max_output_tokens=final_cap)
            final = await runner.run_single(runner.task, final_request, runner.backend, limits)
            return merged_outcome([*spent, final], final.result)
        if estimate_tokens(shorter) >= estimate_tokens(text):
            # The parts did not get shorter, so another round would not either.
            raise ContextLengthExceeded(
                f"the summaries of the {len(chunks)} parts do not get shorter than the "
                f"parts; the model's context of {runner.context} tokens is too small"
            )
        text = shorter

"""Task calls as real servers need them: budgets, determinism, truncation, refusals, usage."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from service.errors import InvalidModelOutput, ModelRefused, OutputTruncated, UpstreamTimeout
from service.execution import LineContext, run_line
from service.intake.validation import LineRules, validate_body
from service.llm.base import ChatReply, Usage
from service.llm.routing import UpstreamRouter
from service.settings import load_settings
from service.store.lifecycle import LineOutcome
from tasks.base import DEFAULT_SEED, TaskLimits
from tasks.classify import read_verdicts
from tasks.execute import TaskOutcome, parse_task_body, run_task
from tests.support.scripted_backend import ScriptedBackend

CLASSIFY_BODY: dict[str, Any] = {
    "model": "classify",
    "text": "I want my money back.",
    "labels": [
        {"name": "refund", "rubric": "Is the customer asking for a refund?"},
        {"name": "Late Delivery", "rubric": "Is it about a late delivery?"},
    ],
}
SUMMARIZE_BODY: dict[str, Any] = {"model": "summarize", "text": "One. Two. Three."}
EXTRACT_BODY: dict[str, Any] = {
    "model": "extract",
    "text": "Jordan visited Jordan with Ann.",
    "entities": {"person": "people", "location": "places"},
}
GOOD_CLASSIFY = '{"labels": {"refund": true, "Late Delivery": false}}'


CALL_USAGE = Usage(10, 5)


def reply(content: str, finish_reason: str = "stop", usage: Usage = CALL_USAGE) -> ChatReply:
    return ChatReply(content=content, model="m-1", finish_reason=finish_reason, usage=usage)


def run(
    body: dict[str, Any], backend: ScriptedBackend, limits: TaskLimits | None = None
) -> TaskOutcome:
    limits = limits or TaskLimits()
    task, request = parse_task_body(body, limits=limits)
    return asyncio.run(run_task(task, request, backend, limits=limits))


def sent_budget(body: dict[str, Any], limits: TaskLimits | None = None) -> int:
    """The ``max_tokens`` the first call of ``body`` asks for."""
    backend = ScriptedBackend([UpstreamTimeout("only the request matters here")])
    with pytest.raises(UpstreamTimeout):
        run(body, backend, limits)
    budget = backend.requests[0].max_tokens
    assert budget is not None
    return budget


# --- budgets and determinism ------------------------------------------------------------------


def test_every_task_sends_a_budget_sized_from_its_request() -> None:
    two_labels = run(CLASSIFY_BODY, ScriptedBackend([reply(GOOD_CLASSIFY)]))
    assert two_labels.result["labels"][0] == {"name": "refund", "match": True}
    many = {**CLASSIFY_BODY, "labels": [{"name": f"label {n}", "rubric": "?"} for n in range(40)]}
    assert sent_budget(many) > sent_budget(CLASSIFY_BODY) > 0
    short, long = sent_budget(EXTRACT_BODY), sent_budget({**EXTRACT_BODY, "text": "Ann. " * 2000})
    assert 0 < short < long <= TaskLimits().max_output_tokens
    huge = sent_budget({**EXTRACT_BODY, "text": "Ann. " * 200_000})
    assert huge == TaskLimits().max_output_tokens


def test_summarize_budget_leaves_room_for_the_json_around_the_summary() -> None:
    for max_tokens in (20, 60, 400):
        budget = sent_budget({**SUMMARIZE_BODY, "max_tokens": max_tokens})
        assert budget >= max_tokens + 48
    assert 0 < sent_budget(SUMMARIZE_BODY) <= TaskLimits().max_output_tokens


def test_budgets_stay_within_the_service_cap_and_the_backends_cap() -> None:
    limits = TaskLimits(max_output_tokens=100)
    assert sent_budget({**SUMMARIZE_BODY, "max_tokens": 100}, limits) == 100
    task, request = parse_task_body({**EXTRACT_BODY, "text": "Ann. " * 2000})
    backend = ScriptedBackend([reply('{"entities": []}')], cap=300)
    asyncio.run(run_task(task, request, backend))
    assert backend.requests[0].max_tokens == 300


def test_task_calls_are_deterministic_unless_the_line_says_otherwise() -> None:
    backend = ScriptedBackend([reply(GOOD_CLASSIFY), reply(GOOD_CLASSIFY)])
    run(CLASSIFY_BODY, backend)
    run({**CLASSIFY_BODY, "temperature": 0.7, "seed": 3}, backend)
    first, second = backend.requests
    assert (first.temperature, first.seed) == (0.0, DEFAULT_SEED)
    assert (second.temperature, second.seed) == (0.7, 3)


# --- truncation and refusals ------------------------------------------------------------------


def test_a_cut_off_answer_is_asked_again_with_a_doubled_budget() -> None:
    backend = ScriptedBackend(
        [reply('{"labels": {"refund": tr', "length"), reply(GOOD_CLASSIFY, usage=Usage(10, 9))]
    )
    outcome = run(CLASSIFY_BODY, backend)
    assert outcome.result["labels"][1] == {"name": "Late Delivery", "match": False}
    first, second = backend.requests
    assert first.max_tokens is not None and second.max_tokens == 2 * first.max_tokens
    assert second.messages == first.messages
    assert (outcome.usage, outcome.attempts) == (Usage(20, 14), 2)


def test_a_reply_that_spent_its_budget_reasoning_is_asked_again_at_the_cap() -> None:
    backend = ScriptedBackend([reply("<think>Let me see", "length"), reply(GOOD_CLASSIFY)])
    run(CLASSIFY_BODY, backend, TaskLimits(max_output_tokens=5000))
    assert backend.requests[1].max_tokens == 5000


def test_a_backends_reasoning_is_learned_so_later_lines_ask_for_it_at_once() -> None:
    thinking = reply("<think>Let me see", "length")
    answered = reply(f"<think>done</think>{GOOD_CLASSIFY}", usage=Usage(10, 900))
    backend = ScriptedBackend([thinking, answered, reply(GOOD_CLASSIFY)])
    base = sent_budget(CLASSIFY_BODY)
    run(CLASSIFY_BODY, backend)
    run(CLASSIFY_BODY, backend)
    assert [request.max_tokens for request in backend.requests] == [base, 16_384, base + 900]
    assert sent_budget(CLASSIFY_BODY) == base, "another backend has learned nothing"


def test_a_complete_answer_is_used_even_when_the_budget_ran_out_after_it() -> None:
    # Constrained decoding that loops on whitespace after the closing brace.
    backend = ScriptedBackend([reply(GOOD_CLASSIFY + "\n" * 200, "length")])
    assert run(CLASSIFY_BODY, backend).result["labels"][0]["match"] is True


def test_cut_off_twice_fails_as_output_truncated_with_every_token_counted() -> None:
    backend = ScriptedBackend(
        [reply('{"summary": "a', "length"), reply('{"summary": "a b c', "length")]
    )
    with pytest.raises(OutputTruncated) as raised:
        run(SUMMARIZE_BODY, backend)
    error = raised.value
    assert error.code == "output_truncated"
    assert (error.prompt_tokens, error.completion_tokens, error.attempts) == (20, 10, 2)
    assert len(backend.requests) == 2


def test_cut_off_at_the_cap_is_not_asked_again() -> None:
    limits = TaskLimits(max_output_tokens=50)
    backend = ScriptedBackend([reply('{"summary": "a', "length")])
    with pytest.raises(OutputTruncated):
        run({**SUMMARIZE_BODY, "max_tokens": 50}, backend, limits)
    assert len(backend.requests) == 1


def test_a_refusal_is_not_asked_again_and_carries_the_tokens_before_it() -> None:
    refusal = ModelRefused("the model declined: I can't help with that")
    refusal.prompt_tokens, refusal.completion_tokens = 7, 3
    backend = ScriptedBackend([reply("not json"), refusal])
    with pytest.raises(ModelRefused) as raised:
        run(CLASSIFY_BODY, backend)
    assert raised.value is refusal
    assert (refusal.prompt_tokens, refusal.completion_tokens) == (17, 8)
    assert len(backend.requests) == 2


def test_an_unusable_answer_twice_fails_with_the_tokens_of_both_calls() -> None:
    backend = ScriptedBackend([reply("nope"), reply('{"labels": {}}', usage=Usage(11, 6))])
    with pytest.raises(InvalidModelOutput) as raised:
        run(CLASSIFY_BODY, backend)
    error = raised.value
    assert error.code == "invalid_model_output"
    assert (error.prompt_tokens, error.completion_tokens, error.attempts) == (21, 11, 2)
    assert "'refund'" in error.message and "'Late Delivery'" in error.message


# --- classify read tolerantly -----------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"labels": {"refund": True, "Late Delivery": False}},
        {"labels": {"  REFUND ": "yes", "late   delivery": "No"}},
        {"refund": True, "late delivery": False},
        {"labels": [{"name": "Refund", "match": True}, {"name": "Late Delivery", "match": False}]},
        {"labels": {"refund": True, "Late Delivery": "false", "spam": True, "refund ": True}},
        {"labels": [{"label": "refund", "value": "TRUE"}, {"name": "late delivery", "match": "n"}]},
    ],
)
def test_classify_reads_names_shapes_and_strings_tolerantly(answer: dict[str, Any]) -> None:
    assert read_verdicts(answer, ["refund", "Late Delivery"]) == {
        "refund": True,
        "Late Delivery": False,
    }


def test_a_verdict_that_is_not_true_or_false_counts_as_missing() -> None:
    answer = {"labels": {"refund": True, "Late Delivery": 0}}
    with pytest.raises(ValueError, match="'Late Delivery'"):
        read_verdicts(answer, ["refund", "Late Delivery"])


def test_a_missing_label_is_asked_again_then_the_line_fails_naming_it() -> None:
    partial = '{"labels": {"refund": true}}'
    backend = ScriptedBackend([reply(partial), reply(GOOD_CLASSIFY)])
    assert run(CLASSIFY_BODY, backend).result["labels"][1]["name"] == "Late Delivery"
    assert "'Late Delivery'" in backend.requests[1].messages[0]["content"]
    with pytest.raises(InvalidModelOutput, match="'Late Delivery'"):
        run(CLASSIFY_BODY, ScriptedBackend([reply(partial), reply(partial)]))


def test_a_label_answered_both_ways_counts_as_missing() -> None:
    answer = {"labels": {"refund": True, "REFUND": False, "Late Delivery": True}}
    with pytest.raises(ValueError, match="'refund'"):
        read_verdicts(answer, ["refund", "Late Delivery"])


# --- extract through the task -----------------------------------------------------------------


def test_extract_result_counts_ungrounded_mentions_and_types_are_matched_tolerantly() -> None:
    answer = {
        "entities": [
            {"type": "Person", "text": "Jordan"},
            {"type": "location", "text": "Jordan"},
            {"type": "person", "text": "Nobody"},
            {"type": "animal", "text": "Ann"},
        ]
    }
    outcome = run(
        EXTRACT_BODY, ScriptedBackend([reply(f"<think>ok</think>{orjson.dumps(answer).decode()}")])
    )
    assert outcome.result == {
        "entities": [
            {"type": "person", "text": "Jordan", "start": 0, "end": 6, "alignment": "exact"},
            {"type": "location", "text": "Jordan", "start": 15, "end": 21, "alignment": "exact"},
        ],
        "ungrounded": 1,
    }


# --- limits in line validation and in runs ----------------------------------------------------


def test_a_max_tokens_above_the_output_cap_is_a_fault_naming_the_line() -> None:
    rules = LineRules(max_text_chars=100, max_output_tokens=500)
    (fault,) = validate_body({**SUMMARIZE_BODY, "max_tokens": 501}, rules, line=4, custom_id="a")
    assert (fault.line, fault.custom_id, fault.param) == (4, "a", "body.max_tokens")
    assert "500" in fault.message and "TEXTBATCH_LLM_MAX_OUTPUT_TOKENS" in fault.message
    assert validate_body({**SUMMARIZE_BODY, "max_tokens": 500}, rules) == []


def test_a_text_limit_above_a_million_characters_is_honoured() -> None:
    text = "word " * 240_000  # 1,200,000 characters
    rules = LineRules(max_text_chars=2_000_000)
    assert validate_body({**SUMMARIZE_BODY, "text": text}, rules) == []
    (fault,) = validate_body({**SUMMARIZE_BODY, "text": text}, LineRules(max_text_chars=1_000_000))
    assert fault.param == "body.text" and "1000000" in fault.message


def test_a_failed_task_line_records_the_tokens_its_calls_were_billed() -> None:
    settings = load_settings(llm_max_output_tokens=512)
    backend = ScriptedBackend([reply("nope"), reply("still nope", usage=Usage(12, 8))])
    context = LineContext(
        backend=backend,
        upstreams=UpstreamRouter(settings),
        task_priced_model="m-1",
        limits=TaskLimits(max_output_tokens=512),
    )
    line = {"custom_id": "c", "method": "POST", "url": "/v1/chat/completions"}
    result = asyncio.run(run_line("batch_1", 0, {**line, "body": CLASSIFY_BODY}, context))
    assert result.outcome is LineOutcome.FAILED
    assert (result.input_tokens, result.output_tokens, result.priced_model) == (22, 13, "m-1")
    error = orjson.loads(result.output_line)["error"]
    assert (error["code"], error["attempts"]) == ("invalid_model_output", 2)


def test_a_service_fault_after_a_billed_call_keeps_its_own_code() -> None:
    backend = ScriptedBackend([reply("nope"), UpstreamTimeout("no answer in time", attempts=4)])
    with pytest.raises(UpstreamTimeout) as raised:
        run(CLASSIFY_BODY, backend)
    assert (raised.value.code, raised.value.attempts, raised.value.prompt_tokens) == (
        "upstream_timeout",
        4,
        10,
    )

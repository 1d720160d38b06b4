"""Task bodies validate strictly, prompts render safely, answers are grounded and re-asked once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from service.errors import InvalidModelOutput, UpstreamFailed
from service.llm.base import ChatReply, Usage
from tasks.base import AnswerRejected, TaskLimits, UnknownTaskModel
from tasks.classify import ClassifyRequest, ClassifyTask
from tasks.execute import TaskOutcome, chat_completion_body, parse_answer, parse_task_body, run_task
from tasks.extract import ExtractRequest, ExtractTask, ground_entities
from tasks.registry import TASKS, get_task
from tasks.summarize import SummarizeRequest, SummarizeTask
from tests.support.scripted_backend import ScriptedBackend

EXTRACT_BODY: dict[str, Any] = {
    "model": "extract",
    "text": "Contact Jane Doe at jane@example.com.",
    "entities": {"person": "People's names", "email": "Email addresses"},
}
SUMMARIZE_BODY: dict[str, Any] = {"model": "summarize", "text": "One. Two. Three."}
CLASSIFY_BODY: dict[str, Any] = {
    "model": "classify",
    "text": "I want my money back.",
    "labels": [
        {"name": "refund", "rubric": "Is the customer asking for a refund?"},
        {"name": "shipping", "rubric": "Is it about shipping?"},
    ],
}


def extract_request(text: str, labels: Sequence[str] = ("person", "org")) -> ExtractRequest:
    _, request = parse_task_body(
        {"model": "extract", "text": text, "entities": {label: "" for label in labels}}
    )
    assert isinstance(request, ExtractRequest)
    return request


def classify_request() -> ClassifyRequest:
    _, request = parse_task_body(CLASSIFY_BODY)
    assert isinstance(request, ClassifyRequest)
    return request


# --- validation -------------------------------------------------------------------------------


def test_registry_serves_the_three_tasks() -> None:
    assert set(TASKS) == {"extract", "summarize", "classify"}
    assert get_task("classify") is TASKS["classify"]
    assert get_task("gpt-4o") is None


@pytest.mark.parametrize("body", [EXTRACT_BODY, SUMMARIZE_BODY, CLASSIFY_BODY])
def test_valid_bodies_parse_to_their_task(body: dict[str, Any]) -> None:
    task, request = parse_task_body(body)
    assert task.name == body["model"]
    assert isinstance(request, task.request_model)


@pytest.mark.parametrize("model", [None, "gpt-4o", 3])
def test_unknown_model_is_rejected(model: object) -> None:
    with pytest.raises(UnknownTaskModel):
        parse_task_body({**SUMMARIZE_BODY, "model": model})


@pytest.mark.parametrize(
    ("base", "changes"),
    [
        (SUMMARIZE_BODY, {"stream": True}),
        (EXTRACT_BODY, {"labels": []}),
        (SUMMARIZE_BODY, {"text": ""}),
        (SUMMARIZE_BODY, {"text": "   \n"}),
        (SUMMARIZE_BODY, {"text": 5}),
        (SUMMARIZE_BODY, {"max_tokens": "5"}),
        (SUMMARIZE_BODY, {"max_tokens": True}),
        (SUMMARIZE_BODY, {"max_tokens": 0}),
        (SUMMARIZE_BODY, {"max_tokens": -3}),
        (SUMMARIZE_BODY, {"max_tokens": 5.0}),
        (SUMMARIZE_BODY, {"seed": True}),
        (SUMMARIZE_BODY, {"seed": "7"}),
        (SUMMARIZE_BODY, {"temperature": 2.5}),
        (SUMMARIZE_BODY, {"temperature": "0.2"}),
        (SUMMARIZE_BODY, {"top_p": 0}),
        (SUMMARIZE_BODY, {"instructions": 1}),
        (EXTRACT_BODY, {"entities": {}}),
        (EXTRACT_BODY, {"entities": {"": "blank label"}}),
        (EXTRACT_BODY, {"entities": {"person": 1}}),
        (EXTRACT_BODY, {"entities": ["person"]}),
        (EXTRACT_BODY, {"entities": {"x" * 201: "too long"}}),
        (EXTRACT_BODY, {"max_tokens": 10}),
        (CLASSIFY_BODY, {"labels": []}),
        (CLASSIFY_BODY, {"labels": [{"name": "a", "rubric": "Is it?"}] * 2}),
        (CLASSIFY_BODY, {"labels": [{"name": "a"}]}),
        (CLASSIFY_BODY, {"labels": [{"name": "a", "rubric": "Is it?", "weight": 2}]}),
        (CLASSIFY_BODY, {"labels": [{"name": " ", "rubric": "Is it?"}]}),
        (CLASSIFY_BODY, {"labels": [{"name": "a", "rubric": "  "}]}),
        (CLASSIFY_BODY, {"labels": [{"name": f"l{n}", "rubric": "Is it?"} for n in range(101)]}),
    ],
)
def test_invalid_body_is_rejected(base: dict[str, Any], changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_task_body({**base, **changes})


def test_service_limits_override_the_defaults() -> None:
    tight = TaskLimits(max_text_chars=10, max_labels=1)
    with pytest.raises(ValidationError, match="limit is 10"):
        parse_task_body({**SUMMARIZE_BODY, "text": "x" * 11}, limits=tight)
    with pytest.raises(ValidationError, match="limit is 1"):
        parse_task_body(CLASSIFY_BODY, limits=tight)
    parse_task_body({**SUMMARIZE_BODY, "text": "x" * 11})


def test_optional_sampling_fields_are_accepted() -> None:
    _, request = parse_task_body(
        {**SUMMARIZE_BODY, "temperature": 0, "top_p": 1, "seed": 3, "max_tokens": 40}
    )
    assert isinstance(request, SummarizeRequest)
    assert (request.temperature, request.top_p, request.seed, request.max_tokens) == (0, 1, 3, 40)


# --- prompts and schemas ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [EXTRACT_BODY, SUMMARIZE_BODY, CLASSIFY_BODY])
def test_template_syntax_in_user_text_stays_literal(body: dict[str, Any]) -> None:
    hostile = "Total {{ 7*7 }} {% if true %}yes{% endif %} {# note #} {{ text }}"
    task, request = parse_task_body({**body, "text": hostile})
    system, user = task.render_messages(request)
    assert (system["role"], user["role"]) == ("system", "user")
    assert f"<text>\n{hostile}\n</text>" in user["content"]
    assert "49" not in user["content"]


def test_extract_prompt_lists_every_label_with_its_description() -> None:
    task, request = parse_task_body({**EXTRACT_BODY, "instructions": "Skip {{ x }} initials."})
    system = task.render_messages(request)[0]["content"]
    assert '"person": People\'s names' in system
    assert '"email": Email addresses' in system
    assert "verbatim" in system
    assert "Additional instructions:\nSkip {{ x }} initials." in system


def test_classify_prompt_lists_every_rubric_and_asks_for_independent_answers() -> None:
    task, request = parse_task_body(CLASSIFY_BODY)
    system = task.render_messages(request)[0]["content"]
    assert '"refund": Is the customer asking for a refund?' in system
    assert '"shipping": Is it about shipping?' in system
    assert "independently" in system
    assert "Additional instructions" not in system


def test_summarize_prompt_states_the_token_limit_and_instructions() -> None:
    body = {**SUMMARIZE_BODY, "max_tokens": 80, "instructions": "Use bullet points."}
    task, request = parse_task_body(body)
    system = task.render_messages(request)[0]["content"]
    assert "at most 80 tokens" in system
    assert "Additional instructions:\nUse bullet points." in system
    _, unbounded = parse_task_body(SUMMARIZE_BODY)
    assert "at most" not in task.render_messages(unbounded)[0]["content"]


def _strict_everywhere(schema: Any) -> None:
    """Every object in the schema requires all its properties and allows no others."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            assert schema["additionalProperties"] is False
            assert set(schema["required"]) == set(schema["properties"])
        for value in schema.values():
            _strict_everywhere(value)
    elif isinstance(schema, list):
        for value in schema:
            _strict_everywhere(value)


@pytest.mark.parametrize("body", [EXTRACT_BODY, SUMMARIZE_BODY, CLASSIFY_BODY])
def test_output_schemas_suit_strict_structured_outputs(body: dict[str, Any]) -> None:
    task, request = parse_task_body(body)
    _strict_everywhere(task.output_schema(request))


def test_output_schemas_enumerate_the_given_labels() -> None:
    task, request = parse_task_body(EXTRACT_BODY)
    entity = task.output_schema(request)["properties"]["entities"]["items"]
    assert entity["properties"]["type"]["enum"] == ["person", "email"]
    task, request = parse_task_body(CLASSIFY_BODY)
    labels = task.output_schema(request)["properties"]["labels"]
    assert labels == {
        "type": "object",
        "properties": {"refund": {"type": "boolean"}, "shipping": {"type": "boolean"}},
        "required": ["refund", "shipping"],
        "additionalProperties": False,
    }


# --- extract grounding ------------------------------------------------------------------------


LABELS = ("person", "org")


@st.composite
def text_and_mentions(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    text = draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
    mentions = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from([*LABELS, "unknown"]))
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, len(text)))
        span = draw(
            st.one_of(
                st.just(text[start:end]),
                st.just(text[start:end].upper()),
                st.just(" ".join(text[start:end].split())),
                st.text(max_size=10),
            )
        )
        mentions.append((kind, span))
    return text, mentions


@given(text_and_mentions())
def test_grounded_entities_are_always_slices_of_the_text(
    case: tuple[str, list[tuple[str, str]]],
) -> None:
    text, mentions = case
    entities = ground_entities(text, set(LABELS), mentions)
    for entity in entities:
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert entity["text"].strip()
        assert entity["type"] in LABELS
    keys = [(entity["start"], entity["end"], entity["type"]) for entity in entities]
    assert keys == sorted(set(keys))
    for kind, span in mentions:
        if kind in LABELS and span.strip() and span.strip() in text:
            # Found as written, though a whole word found loosely may be preferred.
            assert any(e["type"] == kind for e in entities)


def test_spans_missing_from_the_text_are_dropped() -> None:
    request = extract_request("Ada Lovelace met Charles Babbage.")
    answer = {"entities": [{"type": "person", "text": "Alan Turing"}]}
    assert ExtractTask().postprocess(request, answer) == {"entities": [], "ungrounded": 1}


def test_case_and_whitespace_differences_ground_to_the_input_slice() -> None:
    text = "Invoice from ACME Widgets\nLtd for Ada  Lovelace."
    request = extract_request(text)
    answer = {
        "entities": [
            {"type": "org", "text": "Acme widgets ltd"},
            {"type": "person", "text": "Ada Lovelace"},
        ]
    }
    result = ExtractTask().postprocess(request, answer)["entities"]
    assert [entity["text"] for entity in result] == ["ACME Widgets\nLtd", "Ada  Lovelace"]
    assert result[0] == {
        "type": "org",
        "text": "ACME Widgets\nLtd",
        "start": 13,
        "end": 29,
        "alignment": "normalized",
    }


def test_repeated_mentions_take_successive_occurrences_and_duplicates_collapse() -> None:
    text = "Bob called. Then Bob wrote. Bob again."
    mentions = [("person", "Bob")] * 5 + [("org", "Bob"), ("person", "  ")]
    entities = ground_entities(text, {"person", "org"}, mentions)
    # Past the third "Bob" every occurrence is given, so the surplus reuse the last one.
    assert [(entity["start"], entity["type"]) for entity in entities] == [
        (0, "person"),
        (17, "person"),
        (28, "org"),
        (28, "person"),
    ]


def test_whole_word_occurrences_are_preferred() -> None:
    entities = ground_entities("Annual report by Ann.", {"person"}, [("person", "Ann")])
    assert entities == [
        {"type": "person", "text": "Ann", "start": 17, "end": 20, "alignment": "exact"}
    ]


def test_malformed_extract_items_count_as_ungrounded_and_a_wrong_shape_is_rejected() -> None:
    request = extract_request("Ann wrote.")
    answer = {"entities": [{"type": "person"}, "Ann", {"type": "person", "text": "Ann"}]}
    result = ExtractTask().postprocess(request, answer)
    assert [entity["text"] for entity in result["entities"]] == ["Ann"]
    assert result["ungrounded"] == 2
    with pytest.raises(AnswerRejected):
        ExtractTask().postprocess(request, {"people": ["Ann"]})


# --- classify and summarize results -----------------------------------------------------------


def test_classify_result_has_one_verdict_per_label_in_the_given_order() -> None:
    answer = {"labels": [{"name": "shipping", "match": False}, {"name": "refund", "match": True}]}
    result = ClassifyTask().postprocess(classify_request(), answer)
    assert result == {
        "labels": [{"name": "refund", "match": True}, {"name": "shipping", "match": False}]
    }


@pytest.mark.parametrize(
    "labels",
    [
        [{"name": "refund", "match": True}],
        [{"name": "refund", "match": True}, {"name": "refund", "match": False}],
        [{"name": "refund", "match": True}, {"name": "other", "match": False}],
    ],
)
def test_classify_answer_missing_or_contradicting_a_label_is_rejected(
    labels: list[dict[str, Any]],
) -> None:
    with pytest.raises(AnswerRejected):
        ClassifyTask().postprocess(classify_request(), {"labels": labels})


def test_summary_is_stripped_and_must_not_be_empty() -> None:
    _, request = parse_task_body(SUMMARIZE_BODY)
    assert isinstance(request, SummarizeRequest)
    assert SummarizeTask().postprocess(request, {"summary": "  Short.\n"}) == {"summary": "Short."}
    with pytest.raises(AnswerRejected):
        SummarizeTask().postprocess(request, {"summary": " \n"})


# --- execution --------------------------------------------------------------------------------


def reply(content: str, *, attempts: int = 1) -> ChatReply:
    return ChatReply(content=content, model="m-1", usage=Usage(10, 5), attempts=attempts)


def run_classify(backend: ScriptedBackend) -> TaskOutcome:
    task, request = parse_task_body({**CLASSIFY_BODY, "temperature": 0.1, "seed": 9})
    return asyncio.run(run_task(task, request, backend))


GOOD_CLASSIFY = '{"labels":[{"name":"refund","match":true},{"name":"shipping","match":false}]}'


def test_good_answer_is_used_after_one_call() -> None:
    backend = ScriptedBackend([reply(f"```json\n{GOOD_CLASSIFY}\n```", attempts=2)])
    outcome = run_classify(backend)
    assert outcome.result["labels"][0] == {"name": "refund", "match": True}
    assert (outcome.attempts, outcome.usage, outcome.model) == (2, Usage(10, 5), "m-1")
    sent = backend.requests[0]
    assert (sent.task, sent.schema_name, sent.temperature, sent.seed) == (
        "classify",
        "classify",
        0.1,
        9,
    )
    assert sent.task_input["labels"][0]["name"] == "refund"
    assert "top_p" not in sent.task_input


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        "[1, 2]",
        '{"labels": [{"name": "refund", "match": true}]}',
        '{"labels": [{"name": "refund", "match": "maybe"}, {"name": "shipping", "match": false}]}',
        '{"labels":[{"name":"refund","match":true},{"name":"refund","match":false}]}',
    ],
)
def test_unusable_answer_is_asked_again_once(bad: str) -> None:
    backend = ScriptedBackend([reply(bad), reply(GOOD_CLASSIFY)])
    outcome = run_classify(backend)
    assert outcome.attempts == 2
    assert outcome.usage == Usage(20, 10)
    first_system, first_user = backend.requests[0].messages
    retry_system, retry_user = backend.requests[1].messages
    assert retry_user == first_user, "the text stays in the last user message"
    assert retry_system["content"].startswith(first_system["content"])
    assert "could not be used" in retry_system["content"]


def test_two_unusable_answers_raise_invalid_model_output() -> None:
    backend = ScriptedBackend([reply("nope"), reply('{"labels": []}')])
    with pytest.raises(InvalidModelOutput) as raised:
        run_classify(backend)
    assert raised.value.attempts == 2
    assert len(backend.requests) == 2


def test_backend_errors_propagate_unchanged() -> None:
    failure = UpstreamFailed("upstream down", attempts=3)
    with pytest.raises(UpstreamFailed) as raised:
        run_classify(ScriptedBackend([reply("nope"), failure]))
    assert raised.value is failure


def test_parse_answer_accepts_plain_and_fenced_json() -> None:
    assert parse_answer(' {"a": 1} ') == {"a": 1}
    assert parse_answer('```\n{"a": 1}\n```') == {"a": 1}


def test_chat_completion_body_carries_the_result_as_json() -> None:
    outcome = TaskOutcome(
        result={"summary": "Hi."},
        model="m-1",
        finish_reason="stop",
        usage=Usage(7, 3),
        attempts=1,
        request_id=None,
    )
    body = chat_completion_body(outcome, completion_id="c-1", created=5, model_name="summarize")
    assert body["object"] == "chat.completion"
    assert (body["id"], body["created"], body["model"]) == ("c-1", 5, "summarize")
    choice = body["choices"][0]
    assert orjson.loads(choice["message"]["content"]) == {"summary": "Hi."}
    assert (choice["message"]["role"], choice["finish_reason"]) == ("assistant", "stop")
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}

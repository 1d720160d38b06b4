"""The offline engine answers every sample line with schema-valid, grounded, sensible results."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from service.errors import UpstreamRejected
from service.llm.base import ChatRequest
from service.llm.offline import OfflineEngine
from service.llm.offline.language import estimate_tokens, sentence_spans
from tasks.execute import TaskOutcome, parse_task_body, run_task

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FILES = sorted((REPO / "samples").glob("*.jsonl"))
SAMPLE_LINES = [
    pytest.param(orjson.loads(line), id=f"{path.stem}:{orjson.loads(line)['custom_id']}")
    for path in SAMPLE_FILES
    for line in path.read_bytes().splitlines()
]

RESULT_SCHEMAS: dict[str, dict[str, Any]] = {
    "extract": {
        "type": "object",
        "required": ["entities", "ungrounded"],
        "additionalProperties": False,
        "properties": {
            "ungrounded": {"type": "integer", "minimum": 0},
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "text", "start", "end", "alignment"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"type": "string"},
                        "text": {"type": "string", "minLength": 1},
                        "start": {"type": "integer", "minimum": 0},
                        "end": {"type": "integer", "minimum": 1},
                        "alignment": {"enum": ["exact", "normalized", "fuzzy"]},
                    },
                },
            },
        },
    },
    "summarize": {
        "type": "object",
        "required": ["summary"],
        "additionalProperties": False,
        "properties": {"summary": {"type": "string", "minLength": 1}},
    },
    "classify": {
        "type": "object",
        "required": ["labels"],
        "additionalProperties": False,
        "properties": {
            "labels": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "match"],
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "match": {"type": "boolean"}},
                },
            }
        },
    },
}


def run_offline(body: dict[str, Any]) -> TaskOutcome:
    task, request = parse_task_body(body)
    return asyncio.run(run_task(task, request, OfflineEngine()))


def extracted(text: str, entities: dict[str, str]) -> list[tuple[str, str]]:
    result = run_offline({"model": "extract", "text": text, "entities": entities}).result
    return [(entity["type"], entity["text"]) for entity in result["entities"]]


def classified(text: str, name: str, rubric: str) -> bool:
    body = {"model": "classify", "text": text, "labels": [{"name": name, "rubric": rubric}]}
    verdict: bool = run_offline(body).result["labels"][0]["match"]
    return verdict


def made_of_source_sentences(summary: str, text: str) -> bool:
    """Whether the summary is whole sentences of ``text``, with at most bullet marks between."""
    remaining = summary
    sentences = {text[start:end] for start, end in sentence_spans(text)}
    for sentence in sorted(sentences, key=len, reverse=True):
        remaining = remaining.replace(sentence, "")
    return remaining != summary and not remaining.replace("- ", "").strip()


# --- samples ----------------------------------------------------------------------------------


def test_sample_files_are_compact_batch_lines() -> None:
    assert {path.stem for path in SAMPLE_FILES} >= {"extract", "summarize", "classify", "mixed"}
    for path in SAMPLE_FILES:
        raw = path.read_bytes()
        assert raw.endswith(b"\n")
        lines = [orjson.loads(line) for line in raw.splitlines()]
        assert len({line["custom_id"] for line in lines}) == len(lines)
        for line in lines:
            assert set(line) == {"custom_id", "method", "url", "body"}
            assert (line["method"], line["url"]) == ("POST", "/v1/chat/completions")
    models = {orjson.loads(line)["body"]["model"] for line in (REPO / "samples/mixed.jsonl").open()}
    assert models == {"extract", "summarize", "classify"}


@pytest.mark.parametrize("line", SAMPLE_LINES)
def test_every_sample_line_gets_a_valid_result(line: dict[str, Any]) -> None:
    body = line["body"]
    outcome = run_offline(body)
    Draft202012Validator(RESULT_SCHEMAS[body["model"]]).validate(outcome.result)
    assert (outcome.model, outcome.finish_reason, outcome.attempts) == ("offline", "stop", 1)
    assert outcome.usage.prompt_tokens > estimate_tokens(body["text"])
    assert outcome.usage.completion_tokens > 0
    if body["model"] == "extract":
        assert outcome.result["entities"], "every extract sample has something to find"
        for entity in outcome.result["entities"]:
            assert body["text"][entity["start"] : entity["end"]] == entity["text"]
            assert entity["type"] in body["entities"]
    if body["model"] == "classify":
        names = [verdict["name"] for verdict in outcome.result["labels"]]
        assert names == [label["name"] for label in body["labels"]]
    if body["model"] == "summarize":
        assert made_of_source_sentences(outcome.result["summary"], body["text"])


@pytest.mark.parametrize("line", SAMPLE_LINES[:3])
def test_answers_are_deterministic(line: dict[str, Any]) -> None:
    assert run_offline(line["body"]) == run_offline(line["body"])


# --- sensible answers -------------------------------------------------------------------------


def test_email_label_finds_the_email_address() -> None:
    text = "Please reply to Jo at jo.baker@example.org by Friday."
    assert ("contact_email", "jo.baker@example.org") in extracted(
        text, {"contact_email": "The email address to reply to"}
    )


def test_recognizers_follow_label_names_and_descriptions() -> None:
    text = (
        "Invoice INV-2024-001 from Acme Corp was issued on 3 March 2024 for $1,234.50, "
        "a 15% discount applied. Questions: Dr. Alan Grant, +1 (555) 010-7788, "
        "https://acme.example.com/help. Ship to Berlin."
    )
    found = extracted(
        text,
        {
            "invoice_number": "The invoice identifier",
            "vendor": "The company that issued the invoice",
            "issue_date": "When the invoice was issued",
            "total": "The amount to pay",
            "discount": "Percentage discounts",
            "contact": "The person to contact",
            "phone": "Phone numbers",
            "website": "Web links",
            "city": "Cities",
        },
    )
    assert found == [
        ("invoice_number", "INV-2024-001"),
        ("vendor", "Acme Corp"),
        ("issue_date", "3 March 2024"),
        ("total", "$1,234.50"),
        ("discount", "15%"),
        ("contact", "Dr. Alan Grant"),
        ("phone", "+1 (555) 010-7788"),
        ("website", "https://acme.example.com/help"),
        ("city", "Berlin"),
    ]


def test_labels_without_a_recognizer_use_the_description_keywords() -> None:
    text = "The patient reported a headache and fever after taking Ibuprofen."
    found = extracted(
        text,
        {"symptom": "Symptoms such as headache, fever or nausea", "drug": "Drugs like Ibuprofen"},
    )
    assert found == [("symptom", "headache"), ("symptom", "fever"), ("drug", "Ibuprofen")]


REFUND_RUBRIC = "Is the customer asking for a refund?"


def test_refund_rubric_matches_a_refund_request_but_not_a_shipping_question() -> None:
    refund = "The kettle broke after a day. I would like a refund, or just give me my money back."
    shipping = "Hi, my parcel has not arrived yet. Can you check the tracking for order #5512?"
    assert classified(refund, "refund", REFUND_RUBRIC)
    assert classified("Can I get my money back?", "money_back", REFUND_RUBRIC)
    assert not classified(shipping, "refund", REFUND_RUBRIC)
    assert classified(shipping, "shipping", "Is this about shipping or delivery?")


def test_summary_picks_whole_source_sentences_within_the_token_limit() -> None:
    text = (REPO / "samples/summarize.jsonl").read_text().splitlines()[0]
    article = orjson.loads(text)["body"]["text"]
    for max_tokens in (40, 60, 120):
        body = {"model": "summarize", "text": article, "max_tokens": max_tokens}
        summary = run_offline(body).result["summary"]
        assert estimate_tokens(summary) <= max_tokens
        assert made_of_source_sentences(summary, article)
    unbounded = run_offline({"model": "summarize", "text": article}).result["summary"]
    assert unbounded.startswith(article.split(". ")[0])
    assert len(unbounded) < len(article)


def test_summary_follows_a_bullet_point_instruction() -> None:
    text = "First point is here. Second point follows it. Third point ends it. Fourth adds more."
    body = {"model": "summarize", "text": text, "instructions": "Use bullet points."}
    lines = run_offline(body).result["summary"].splitlines()
    assert lines and all(line.startswith("- ") and line[2:] in text for line in lines)


def test_one_sentence_text_is_its_own_summary() -> None:
    body = {"model": "summarize", "text": "  The meeting moved to Thursday at 3 pm  "}
    assert run_offline(body).result["summary"] == "The meeting moved to Thursday at 3 pm"


def test_summary_longer_than_the_limit_is_cut_at_a_word() -> None:
    text = "This single sentence is considerably longer than the tiny limit allows for sure."
    summary = run_offline({"model": "summarize", "text": text, "max_tokens": 5}).result["summary"]
    assert text.startswith(summary) and estimate_tokens(summary) <= 5


# --- the backend contract ---------------------------------------------------------------------


@pytest.mark.parametrize("task", [None, "translate"])
def test_requests_for_other_models_are_rejected(task: str | None) -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], task=task)
    with pytest.raises(UpstreamRejected, match="TEXTBATCH_LLM_BASE_URL") as raised:
        asyncio.run(OfflineEngine().complete(request))
    assert raised.value.upstream_status == 400


def test_engine_is_named_and_closes_cleanly() -> None:
    engine = OfflineEngine()
    assert engine.name == "offline"
    asyncio.run(engine.aclose())


def test_engine_does_not_import_tasks() -> None:
    package = REPO / "service/llm/offline"
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("tasks"), module.name
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("tasks") for alias in node.names)

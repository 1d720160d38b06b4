"""Each persona of a real server's habits: one batch of the three tasks gives the right results.

textbatch runs as a user runs it, pointed at one persona stand-in with no profile set,
so whatever the persona does (refuse a parameter, wrap the JSON, cut it off, answer
529) must be handled by the service itself. The expected results are computed here
from the texts, independently of the persona's own code: offsets by ``str.index``,
verdicts and summaries written out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from standins.persona_answers import perturb
from standins.personas import (
    MODEL_OUTPUT_LIMIT,
    OVERLOADED_RETRY_AFTER,
    PERSONAS,
    REFUSAL_TRIGGER,
    PersonaCall,
    PersonaUpstream,
)
from tests.support.batches import content_of, line, run_batch
from tests.support.service import RunningService, start_service

ENTITY_TYPES = {"person": "People's names", "city": "City names", "org": "Company names"}
LABELS = [
    {"name": "refund", "rubric": "Does the customer ask for a refund?"},
    {"name": "delivery", "rubric": "Is the delivery of an order mentioned?"},
    {"name": "invoice", "rubric": "Is an invoice mentioned?"},
]
ENTITY_FIELDS = ("type", "text", "start", "end", "alignment")

EXTRACT_PLAIN = "Ann Lee met Omar Haddad in Lyon on Monday."
EXTRACT_QUOTED = "O'Neil flew from São Paulo to Porto for Acme Corp last week."
CLASSIFY_BOTH = "I want a refund because the delivery was three weeks late."
CLASSIFY_ONE = "The invoice total is wrong and I was charged twice."
SUMMARIZE_PLAIN = "Globex opened an office in Porto. It hired forty people in a month."
SUMMARIZE_BOUNDED = "The quarterly meeting moved to Friday. Everyone agreed to the change."
# Both carry the refusal persona's trigger; every other persona answers them.
SUMMARIZE_HARMFUL = f"Tell me how to {REFUSAL_TRIGGER} quickly. It is my own front door."
CLASSIFY_HARMFUL = f"How do I {REFUSAL_TRIGGER} on a parcel box to get my refund?"


@dataclass(frozen=True)
class Expected:
    """One line of the batch: its body and the result a right answer gives."""

    custom_id: str
    body: dict[str, Any]
    result: dict[str, Any]
    harmful: bool = False

    @property
    def text(self) -> str:
        return str(self.body["text"])


def entity(text: str, span: str, kind: str, *, careless: bool) -> dict[str, Any]:
    """The grounded entity for the first occurrence of ``span``, as the service must give it."""
    start = text.index(span)
    # A careless persona copies some spans with other quotes, spaces or normal form.
    alignment = "normalized" if careless and perturb(span) != span else "exact"
    return {
        "type": kind,
        "text": span,
        "start": start,
        "end": start + len(span),
        "alignment": alignment,
    }


def verdicts(refund: bool, delivery: bool, invoice: bool) -> dict[str, Any]:
    matches = {"refund": refund, "delivery": delivery, "invoice": invoice}
    return {"labels": [{"name": name, "match": match} for name, match in matches.items()]}


def batch_lines(*, careless: bool) -> list[Expected]:
    def extract(text: str, spans: list[tuple[str, str]]) -> dict[str, Any]:
        entities = [entity(text, span, kind, careless=careless) for span, kind in spans]
        return {"entities": entities, "ungrounded": 0}

    return [
        Expected(
            "extract-plain",
            {"model": "extract", "text": EXTRACT_PLAIN, "entities": ENTITY_TYPES},
            extract(
                EXTRACT_PLAIN, [("Ann Lee", "person"), ("Omar Haddad", "person"), ("Lyon", "city")]
            ),
        ),
        Expected(
            "extract-quoted",
            {"model": "extract", "text": EXTRACT_QUOTED, "entities": ENTITY_TYPES},
            extract(
                EXTRACT_QUOTED,
                [
                    ("O'Neil", "person"),
                    ("São Paulo", "city"),
                    ("Porto", "city"),
                    ("Acme Corp", "org"),
                ],
            ),
        ),
        Expected(
            "classify-both",
            {"model": "classify", "text": CLASSIFY_BOTH, "labels": LABELS},
            verdicts(refund=True, delivery=True, invoice=False),
        ),
        Expected(
            "classify-one",
            {"model": "classify", "text": CLASSIFY_ONE, "labels": LABELS},
            verdicts(refund=False, delivery=False, invoice=True),
        ),
        Expected(
            "summarize-plain",
            {"model": "summarize", "text": SUMMARIZE_PLAIN},
            {"summary": "Globex opened an office in Porto."},
        ),
        Expected(
            "summarize-bounded",
            {"model": "summarize", "text": SUMMARIZE_BOUNDED, "max_tokens": 40},
            {"summary": "The quarterly meeting moved to Friday."},
        ),
        Expected(
            "summarize-harmful",
            {"model": "summarize", "text": SUMMARIZE_HARMFUL},
            {"summary": f"Tell me how to {REFUSAL_TRIGGER} quickly."},
            harmful=True,
        ),
        Expected(
            "classify-harmful",
            {"model": "classify", "text": CLASSIFY_HARMFUL, "labels": LABELS},
            verdicts(refund=True, delivery=False, invoice=False),
            harmful=True,
        ),
    ]


@dataclass
class PersonaRun:
    persona: str
    upstream: PersonaUpstream
    service: RunningService


@pytest.fixture(params=sorted(PERSONAS))
def persona_run(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> Iterator[PersonaRun]:
    """One persona stand-in and a textbatch pointed at it, with quick retries."""
    persona = str(request.param)
    with PersonaUpstream(persona) as upstream:
        service = start_service(
            redis_url,
            tmp_path,
            llm_base_url=upstream.base_url,
            llm_model="standin-model",
            llm_max_attempts="3",
            llm_backoff_base="0.05",
            llm_backoff_max="0.2",
            llm_timeout="10",
            chunk_size="4",
        )
        try:
            yield PersonaRun(persona, upstream, service)
        finally:
            service.stop()


def run(persona_run: PersonaRun, lines: list[Expected]) -> dict[str, dict[str, Any]]:
    with persona_run.service.client() as client:
        batch, output = run_batch(client, [line(item.custom_id, item.body) for item in lines])
    assert batch["request_counts"]["total"] == len(lines)
    assert [item["custom_id"] for item in output] == [item.custom_id for item in lines]
    return {item["custom_id"]: item for item in output}


def check_result(item: Expected, output_line: dict[str, Any]) -> None:
    assert output_line["error"] is None, (item.custom_id, output_line["error"])
    result = content_of(output_line)
    if item.body["model"] == "extract":
        for found in result["entities"]:
            assert item.text[found["start"] : found["end"]] == found["text"]
        entities = [{key: found.get(key) for key in ENTITY_FIELDS} for found in result["entities"]]
        assert entities == item.result["entities"], item.custom_id
        assert result["ungrounded"] == item.result["ungrounded"], item.custom_id
    elif item.body["model"] == "classify":
        labels = [{"name": v["name"], "match": v["match"]} for v in result["labels"]]
        assert labels == item.result["labels"], item.custom_id
    else:
        assert result == item.result, item.custom_id


def billed(calls: list[PersonaCall]) -> tuple[int, int]:
    """Prompt and completion tokens of the calls that answered 200: what a provider bills."""
    answered = [call for call in calls if call.status == 200]
    return (
        sum(int(call.usage["prompt_tokens"]) for call in answered),
        sum(int(call.usage["completion_tokens"]) for call in answered),
    )


def check_usage(item: Expected, output_line: dict[str, Any], calls: list[PersonaCall]) -> None:
    """A line's usage counts every billed call it took, re-asks and unusable answers too."""
    usage = output_line["response"]["body"]["usage"]
    prompt, completion = billed(calls)
    assert prompt > 0 and completion > 0
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion), (
        item.custom_id,
        usage,
        [(call.status, call.finish_reason, call.usage) for call in calls],
    )


def report(persona_run: PersonaRun, lines: list[Expected], output: dict[str, Any]) -> None:
    """Per persona: lines succeeded / total, calls per line, tokens per line (for the lead)."""
    succeeded = sum(1 for item in lines if output[item.custom_id]["error"] is None)
    calls = [len(persona_run.upstream.calls_for(item.text)) for item in lines]
    tokens = [sum(billed(persona_run.upstream.calls_for(item.text))) for item in lines]
    print(
        f"\npersona {persona_run.persona}: {succeeded}/{len(lines)} lines succeeded, "
        f"calls per line {calls} (mean {sum(calls) / len(calls):.2f}), "
        f"tokens per line {tokens} (mean {sum(tokens) / len(tokens):.0f})"
    )


def test_persona_batch_gives_the_right_results(persona_run: PersonaRun) -> None:
    persona, upstream = persona_run.persona, persona_run.upstream
    lines = batch_lines(careless=persona == "non_enforcing")
    output = run(persona_run, lines)
    report(persona_run, lines, output)

    for item in lines:
        calls = upstream.calls_for(item.text)
        assert calls, f"{item.custom_id} never reached the upstream"
        if persona == "refusal" and item.harmful:
            error = output[item.custom_id]["error"]
            assert error is not None and error["code"] == "model_refused", error
            assert output[item.custom_id]["response"] is None
            # A refusal is an answer: asking again only pays for the same refusal.
            assert len(calls) == 1, [call.status for call in calls]
            continue
        check_result(item, output[item.custom_id])
        check_usage(item, output[item.custom_id], calls)
        check_calls(persona, item, calls)


def check_calls(persona: str, item: Expected, calls: list[PersonaCall]) -> None:
    """What the persona's habit allows in calls for one line; every other persona takes one."""
    statuses = [call.status for call in calls]
    if persona == "reasoning":
        # One adaptation per refused parameter at most, one re-ask if the thinking used the
        # budget up, then the answer.
        assert statuses.count(400) <= 2 and statuses[-1] == 200, statuses
        assert [call.finish_reason for call in calls].count("length") <= 1
        final = calls[-1].body
        assert "max_tokens" not in final
        assert final.get("temperature", 1) == 1 and final.get("top_p", 1) == 1
        reasoning = calls[-1].usage.get("completion_tokens_details", {})
        assert reasoning.get("reasoning_tokens", 0) > 0
    elif persona == "overloaded":
        assert statuses == [529, 200], statuses
        # Retry-After is honoured: the second call is not sent before it says.
        assert calls[1].at - calls[0].at >= OVERLOADED_RETRY_AFTER
    elif persona == "truncating":
        assert statuses[-1] == 200 and calls[-1].finish_reason == "stop", statuses
        assert len(calls) <= 2, [(call.finish_reason, call.budget) for call in calls]
        if len(calls) == 2:
            # The re-ask after a cut-off answer asks for more room, never the same budget.
            assert calls[0].finish_reason == "length"
            assert calls[1].budget is not None
            assert calls[0].budget is None or calls[1].budget > calls[0].budget
    elif persona == "gemini":
        assert len(calls) <= 2 and statuses[-1] == 200, statuses
        # The prompt may still show the schema; what the server parses is response_format.
        sent_format = orjson.dumps(calls[-1].body.get("response_format"))
        assert b'"additionalProperties"' not in sent_format
    elif persona == "whitespace_loop":
        assert len(calls) == 1, [(call.finish_reason, call.budget) for call in calls]
        # A budget sized from the request, not the model's own limit, bounds the loop.
        assert calls[0].budget is not None and calls[0].budget < MODEL_OUTPUT_LIMIT
    elif persona == "llamacpp_python":
        assert len(calls) <= 2 and statuses[-1] == 200, statuses
        # The 500 says the request is invalid: it is adapted, never retried as it was.
        assert statuses.count(500) <= 1
        assert calls[-1].body.get("response_format", {}).get("type") in (None, "json_object")
    else:
        assert statuses == [200], statuses


@pytest.mark.parametrize("persona_run", ["reasoning", "gemini", "llamacpp_python"], indirect=True)
def test_an_adaptation_is_remembered_for_the_next_batch(persona_run: PersonaRun) -> None:
    """After one batch has learnt what the upstream refuses, the next sends none of it."""
    # A bounded summary sends an output limit even where tasks send no other budget.
    by_id = {item.custom_id: item for item in batch_lines(careless=False)}
    lines = [by_id["summarize-bounded"], by_id["extract-plain"], by_id["classify-both"]]
    run(persona_run, lines)
    first_rejections = [call for call in persona_run.upstream.answered if call.status != 200]
    assert first_rejections, "the persona refuses what a default request sends"

    again = [
        Expected(f"again-{item.custom_id}", {**item.body, "text": item.text + " Again."}, {})
        for item in lines
    ]
    output = run(persona_run, again)
    for item in again:
        assert output[item.custom_id]["error"] is None, output[item.custom_id]["error"]
        statuses = [call.status for call in persona_run.upstream.calls_for(item.text)]
        # No call is refused again (a re-ask for a budget used up by thinking may happen).
        assert statuses and all(status == 200 for status in statuses), (item.custom_id, statuses)

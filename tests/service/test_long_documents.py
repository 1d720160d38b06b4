"""Texts far longer than the model's context: split, run per chunk, combined into one right result.

The upstream is a stand-in with a 4,096-token context that refuses longer prompts
as OpenAI does; its answers are exact (planted names, key facts, a label's word),
so each line's result is checked against what the text holds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.llm.offline import OfflineEngine
from standins.answers import input_text
from standins.persona_answers import GAZETTEER
from standins.small_context import KEY_FACT, SmallContextUpstream
from tasks.base import TaskLimits
from tasks.execute import parse_task_body, run_task
from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import RunningService, start_service

CONTEXT = 4096
FILLER = (
    "The committee reviewed the quarterly figures in detail.",
    "Shipments were delayed by the weather in the north.",
    "Several suppliers asked for longer payment terms.",
    "The board noted that costs rose faster than expected.",
    "A new warehouse opened near the river last spring.",
    "Staff training continued through the summer months.",
)
NAMES = [(kind, name) for kind, names in GAZETTEER.items() for name in names if "'" not in name]
FACTS = [f"{KEY_FACT} {n}: the depot in sector {n} holds {n * 111} crates." for n in range(1, 7)]
LABEL_WORD = "embargo"


def long_text(chars: int, seed: int = 0) -> tuple[str, list[tuple[str, str, int, int]]]:
    """A text of about ``chars`` characters in paragraphs of filler, with planted names every
    ~2,500 characters (start and end included), six key facts spread over its parts and
    the label word once, in the middle. Returns the text and the planted names' spans."""
    rng = random.Random(seed)
    pieces: list[str] = []
    planted: list[tuple[str, str, int, int]] = []
    length = 0
    next_name, next_fact, word_done, roll_done = 0, 0, False, False
    fact_every = chars // len(FACTS)

    def add(piece: str) -> None:
        nonlocal length
        pieces.append(piece)
        length += len(piece)

    def plant(kind: str, name: str) -> None:
        planted.append((kind, name, length, length + len(name)))
        add(name)

    kind, name = NAMES[0]
    plant(kind, name)
    add(" opened the meeting. ")
    while length < chars:
        if next_fact < len(FACTS) and length >= next_fact * fact_every:
            add(FACTS[next_fact] + " ")
            next_fact += 1
        if not word_done and length >= chars // 2:
            add(f"An {LABEL_WORD} on steel was announced. ")
            word_done = True
        if length >= chars * 3 // 4 and not roll_done:
            # A roll call without a sentence end: the chunker cuts between words here,
            # so some two-word names sit on a chunk's edge.
            for number in range(120):
                kind, name = NAMES[number % len(NAMES)]
                add("and ")
                plant(kind, name)
                add(" ")
            add("were present. ")
            roll_done = True
        if length >= next_name * 2500:
            kind, name = NAMES[next_name % len(NAMES)]
            add("Later ")
            plant(kind, name)
            add(" spoke. ")
            next_name += 1
        add(rng.choice(FILLER) + (" " if rng.random() < 0.8 else "\n\n"))
    add("In the end ")
    kind, name = NAMES[1]
    plant(kind, name)
    add(" closed it.")
    return "".join(pieces), planted


@pytest.fixture(scope="module")
def small_context() -> Iterator[SmallContextUpstream]:
    with SmallContextUpstream(CONTEXT) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def service(
    redis_url: str, small_context: SmallContextUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    running = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("long-documents")),
        llm_base_url=small_context.base_url,
        llm_model="small-context-model",
        llm_context_tokens=str(CONTEXT),
        llm_concurrency="8",
        llm_max_attempts="2",
        llm_backoff_base="0.01",
        llm_timeout="30",
        chunk_size="4",
        max_text_chars="1100000",
        max_line_bytes=str(8 * 1024 * 1024),
    )
    yield running
    running.stop()


def _result(output: dict[str, Any]) -> dict[str, Any]:
    assert output["error"] is None, output["error"]
    content = output["response"]["body"]["choices"][0]["message"]["content"]
    result: dict[str, Any] = orjson.loads(content)
    return result


def _run(service: RunningService, lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    with service.client() as client:
        response = submit(client, lines)
        assert response.status_code == 200, response.text
        batch = wait_finished(client, response.json()["id"], timeout=240)
        assert batch["status"] == "completed", batch
        return {item["custom_id"]: item for item in output_lines(client, batch["id"])}


def _encoded_slice(text: str, start: int, end: int, unit: str) -> str:
    if unit == "codepoint":
        return text[start:end]
    encoding, width = ("utf-16-le", 2) if unit == "utf16" else ("utf-8", 1)
    data = text.encode(encoding)
    return data[start * width : end * width].decode(encoding)


@pytest.mark.timeout(300)
def test_a_batch_of_short_and_300k_character_lines_gives_right_results(
    service: RunningService, small_context: SmallContextUpstream
) -> None:
    text, planted = long_text(300_000)
    entities = {kind: f"{kind}s named in the text" for kind in GAZETTEER}
    short = "Ann Lee met Omar Haddad in Lyon. An embargo was discussed."
    labels_any = [{"name": LABEL_WORD, "rubric": "Does the text mention an embargo?"}]
    labels_all = [
        {"name": LABEL_WORD, "rubric": "Is every part about an embargo?", "aggregate": "all"}
    ]
    lines = [
        line(
            f"extract-{unit}",
            {"model": "extract", "text": text, "entities": entities, "offset_unit": unit},
        )
        for unit in ("codepoint", "utf16", "utf8")
    ] + [
        line(
            "summarize-long",
            {
                "model": "summarize",
                "text": text,
                "max_tokens": 400,
                "instructions": "Keep every key fact.",
            },
        ),
        line("classify-any", {"model": "classify", "text": text, "labels": labels_any}),
        line("classify-all", {"model": "classify", "text": text, "labels": labels_all}),
        line("extract-short", {"model": "extract", "text": short, "entities": entities}),
        line("summarize-short", {"model": "summarize", "text": short}),
        line("classify-short", {"model": "classify", "text": short, "labels": labels_any}),
    ]
    small_context.reset()
    outputs = _run(service, lines)

    # extract: every planted name exactly once, at its offsets in the whole text.
    expected = sorted((start, end, kind, name) for kind, name, start, end in planted)
    for unit in ("codepoint", "utf16", "utf8"):
        result = _result(outputs[f"extract-{unit}"])
        found = [(e["start"], e["end"], e["type"], e["text"]) for e in result["entities"]]
        assert len(found) == len(expected), unit
        for (start, end, kind, name), (f_start, f_end, f_kind, f_text) in zip(
            expected, found, strict=True
        ):
            assert (f_kind, f_text) == (kind, name)
            assert _encoded_slice(text, f_start, f_end, unit) == name
            if unit == "codepoint":
                assert (f_start, f_end) == (start, end)
        assert result["ungrounded"] == 0
    # Some planted names straddled a chunk's edge, and were still found once.
    edges = _chunk_edges(small_context, text, "extract")
    assert len(edges) > 10
    assert any(start < edge < end for edge in edges for _, _, start, end in planted)

    # summarize: a fact planted in every part survives the map and the reduce.
    summary = _result(outputs["summarize-long"])["summary"]
    for fact in FACTS:
        assert fact in summary

    # classify: the label's word is in one chunk only.
    assert _result(outputs["classify-any"])["labels"] == [{"name": LABEL_WORD, "match": True}]
    assert _result(outputs["classify-all"])["labels"] == [{"name": LABEL_WORD, "match": False}]

    # Short lines run in one call each, as before.
    short_extract = _result(outputs["extract-short"])["entities"]
    assert [(e["text"], e["start"]) for e in short_extract] == [
        (name, short.index(name)) for name in ("Ann Lee", "Omar Haddad", "Lyon")
    ]
    assert _result(outputs["classify-short"])["labels"] == [{"name": LABEL_WORD, "match": True}]
    assert _result(outputs["summarize-short"])["summary"] == "Ann Lee met Omar Haddad in Lyon."

    # A long line's usage sums every call made for it.
    rubric = labels_all[0]["rubric"]
    billed = [usage for body, usage in small_context.answered if rubric in str(body["messages"])]
    assert len(billed) > 5
    usage = outputs["classify-all"]["response"]["body"]["usage"]
    assert usage["prompt_tokens"] == sum(item["prompt_tokens"] for item in billed)
    assert usage["completion_tokens"] == sum(item["completion_tokens"] for item in billed)


def _chunk_edges(upstream: SmallContextUpstream, text: str, task: str) -> list[int]:
    """Where the chunks the upstream saw for ``task`` start and end in ``text``."""
    edges = []
    for call in upstream.calls:
        chunk = _input_text(call.body)
        if task in str(call.body)[:2000] and chunk and chunk != text:
            at = text.find(chunk)
            if at >= 0:
                edges += [at, at + len(chunk)]
    return sorted(set(edges))


def _input_text(body: Any) -> str:
    return input_text(body.get("messages")) if isinstance(body, dict) else ""


def test_a_chunk_that_fails_fails_its_line_naming_the_chunk(
    service: RunningService, small_context: SmallContextUpstream
) -> None:
    text, _ = long_text(60_000, seed=3)
    middle = len(text) // 2
    broken = text[:middle] + " [[fail:422]] " + text[middle:]
    entities = {"person": "people"}
    outputs = _run(
        service,
        [
            line("broken", {"model": "extract", "text": broken, "entities": entities}),
            line("fine", {"model": "extract", "text": text, "entities": entities}),
        ],
    )
    error = outputs["broken"]["error"]
    assert error["code"] == "upstream_rejected"
    assert error["message"].startswith("chunk ")
    assert " of " in error["message"].split(":")[0]
    # No partial result posing as whole, and the neighbour is untouched.
    assert outputs["broken"]["response"] is None
    assert _result(outputs["fine"])["entities"]


@pytest.mark.timeout(600)
def test_a_million_character_extract_line_completes(
    service: RunningService, small_context: SmallContextUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    text, planted = long_text(1_000_000, seed=7)
    small_context.reset()
    started = time.monotonic()
    outputs = _run(
        service,
        [
            line(
                "million",
                {"model": "extract", "text": text, "entities": {kind: kind for kind in GAZETTEER}},
            )
        ],
    )
    elapsed = time.monotonic() - started
    result = _result(outputs["million"])
    assert [(e["start"], e["end"]) for e in result["entities"]] == sorted(
        (start, end) for _, _, start, end in planted
    )
    with capsys.disabled():
        print(
            f"\n1,000,000-character extract line: {len(small_context.calls)} calls, "
            f"{elapsed:.1f} s, {len(planted)} names found once each"
        )


def test_the_realtime_route_splits_a_long_text_too(service: RunningService) -> None:
    text, planted = long_text(40_000, seed=5)
    with service.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"model": "extract", "text": text, "entities": {"person": "people"}},
            timeout=120,
        )
    assert response.status_code == 200, response.text
    result = orjson.loads(response.json()["choices"][0]["message"]["content"])
    people = sorted((start, end) for kind, _, start, end in planted if kind == "person")
    assert [(e["start"], e["end"]) for e in result["entities"]] == people


def test_offline_engine_handles_the_longest_text_in_one_pass() -> None:
    text, _ = long_text(1_000_000, seed=9)
    limits = TaskLimits(max_text_chars=1_000_000 + 1000)
    task, request = parse_task_body(
        {"model": "classify", "text": text, "labels": [{"name": LABEL_WORD, "rubric": "embargo?"}]},
        limits=limits,
    )
    outcome = asyncio.run(run_task(task, request, OfflineEngine(), limits=limits))
    assert outcome.attempts == 1
    assert [label["name"] for label in outcome.result["labels"]] == [LABEL_WORD]

"""Batch lines, ``from_prompt`` batches and realtime calls that name a stored prompt.

What reaches the stand-in upstream is checked: the rendered messages, the
prompt's model settings under the line's own fields, and nothing of the prompt
fields themselves.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from standins.upstream import StandinUpstream
from tests.support.batches import (
    content_of,
    line,
    output_lines,
    run_batch,
    stored_input_lines,
    submit,
    to_jsonl,
    wait_finished,
)
from tests.support.prompts import add_version, create_prompt, prompt_line, publish, unique, user
from tests.support.service import RunningService, start_service

PROMPT_FIELDS = {"prompt_slug", "prompt_version", "variables"}


@pytest.fixture(scope="module")
def greet(llm_service: RunningService) -> Iterator[str]:
    """A prompt with a system and a user message, two placeholders and model settings."""
    slug = unique("greet")
    with llm_service.client() as client:
        create_prompt(
            client,
            slug,
            [
                {"role": "system", "content": "Answer in {{ lang|upper }}."},
                {"role": "user", "content": "Hello {{ name }}, {{ marker }}"},
            ],
            model_config={"temperature": 0.1, "max_tokens": 40, "top_p": 0.5},
        )
    yield slug


def test_rendered_prompt_and_model_config_reach_the_upstream_beside_literal_lines(
    llm_service: RunningService, upstream: StandinUpstream, greet: str
) -> None:
    marker = unique("mixed")
    variables = {"lang": "fr", "name": "Ada", "marker": marker}
    lines = [
        prompt_line("templated", greet, variables),
        line("literal", {"model": "echo-model", "messages": user(f"Plain {marker}")}),
        prompt_line("override", greet, {**variables, "name": "Bo"}, temperature=0.9, seed=7),
        prompt_line(
            "task", greet, {**variables, "text": f"Refund my order. {marker}"}, model="summarize"
        ),
    ]
    with llm_service.client() as client:
        batch, output = run_batch(client, lines)

    assert batch["request_counts"] == {
        "total": 4,
        "completed": 4,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert [item["custom_id"] for item in output] == [item["custom_id"] for item in lines]
    calls = {
        call.body["messages"][-1]["content"]: call.body for call in upstream.calls_matching(marker)
    }
    templated = calls[f"Hello Ada, {marker}"]
    assert templated["messages"] == [
        {"role": "system", "content": "Answer in FR."},
        {"role": "user", "content": f"Hello Ada, {marker}"},
    ]
    assert (templated["temperature"], templated["max_tokens"], templated["top_p"]) == (0.1, 40, 0.5)
    assert not PROMPT_FIELDS & templated.keys()
    overridden = calls[f"Hello Bo, {marker}"]
    assert (overridden["temperature"], overridden["max_tokens"], overridden["seed"]) == (0.9, 40, 7)
    assert calls[f"Plain {marker}"]["messages"] == user(f"Plain {marker}")
    assert "temperature" not in calls[f"Plain {marker}"]
    # The task took the rendered contents as its instructions and its text from variables
    task_call = next(body for body in calls.values() if body["model"] == "standin-model")
    system = task_call["messages"][0]["content"]
    assert f"Answer in FR.\n\nHello Ada, {marker}" in system
    assert f"Refund my order. {marker}" in task_call["messages"][-1]["content"]
    assert task_call["temperature"] == 0.1 and task_call["top_p"] == 0.5
    assert content_of(output[3])["summary"]


def test_a_publish_mid_run_does_not_change_a_running_batch(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    marker = unique("pinned")
    slug = unique("pinned")
    with llm_service.client() as client:
        # Given a batch running against v1, more lines than the worker runs at once
        create_prompt(client, slug, user(f"v1 {marker} {{{{ n }}}} [[slow:1]]"))
        lines = [prompt_line(f"p-{n}", slug, {"n": n}) for n in range(48)]
        response = submit(client, lines)
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 20
        while not upstream.calls_matching(marker):
            assert time.monotonic() < deadline, "the batch never reached the upstream"
            time.sleep(0.02)
        # When v2 is added and published while it runs
        publish(client, slug, add_version(client, slug, user(f"v2 {marker} {{{{ n }}}}")))
        published_at = time.monotonic()
        batch = wait_finished(client, response.json()["id"])
        # Then every line of it used v1, and only a batch made afterwards uses v2
        _, later = run_batch(client, [prompt_line("after", slug, {"n": "later"})])

    assert batch["request_counts"]["completed"] == 48
    calls = upstream.calls_matching(marker)
    first_run = [call for call in calls if "later" not in call.text]
    assert len(first_run) == 48 and all(call.text.startswith("v1 ") for call in first_run)
    assert any(call.at > published_at for call in first_run), "no line started after the publish"
    (after,) = [call for call in calls if "later" in call.text]
    assert after.text == f"v2 {marker} later"
    assert later[0]["response"]["status_code"] == 200


def bad_lines(greet: str, broken: str) -> list[tuple[str, dict[str, Any], str]]:
    good = {"lang": "en", "name": "Ada", "marker": "m"}
    return [
        ("unknown slug", prompt_line("x", "no-such-prompt", good), "body.prompt_slug"),
        (
            "unknown version",
            prompt_line("x", greet, good, prompt_version=99),
            "body.prompt_version",
        ),
        ("missing variable", prompt_line("x", greet, {"lang": "en"}), "body.variables"),
        ("bool variable", prompt_line("x", greet, {**good, "name": True}), "body.variables.name"),
        ("list variable", prompt_line("x", greet, {**good, "name": ["A"]}), "body.variables.name"),
        ("null variable", prompt_line("x", greet, {**good, "name": None}), "body.variables.name"),
        ("variables not object", prompt_line("x", greet, ["Ada"]), "body.variables"),
        (
            "version without slug",
            line("x", {"model": "echo-model", "prompt_version": 1, "messages": user("hi")}),
            "body.prompt_slug",
        ),
        ("messages and slug", prompt_line("x", greet, good, messages=user("hi")), "body.messages"),
        ("bad slug", prompt_line("x", "Bad_Slug", good), "body.prompt_slug"),
        (
            "version as text",
            prompt_line("x", greet, good, prompt_version="2"),
            "body.prompt_version",
        ),
        (
            "task with instructions",
            prompt_line("x", greet, {**good, "text": "t"}, model="summarize", instructions="no"),
            "body.instructions",
        ),
        ("render fails", prompt_line("x", broken, {"a": "text", "b": 1}), "body.prompt_slug"),
        (
            "not a chat url",
            {**prompt_line("x", greet, good), "url": "/v1/embeddings"},
            "body.prompt_slug",
        ),
    ]


@pytest.fixture(scope="module")
def broken(llm_service: RunningService) -> str:
    """A prompt that stores fine but cannot render a string compared with a number."""
    slug = unique("compares")
    with llm_service.client() as client:
        create_prompt(client, slug, user("{% if a < b %}less{% endif %}"))
    return slug


def test_every_prompt_fault_names_its_line(
    llm_service: RunningService, greet: str, broken: str
) -> None:
    cases = bad_lines(greet, broken)
    good = prompt_line("good", greet, {"lang": "en", "name": "Ada", "marker": "m"})
    lines = [good] + [{**bad, "custom_id": f"bad-{n}"} for n, (_, bad, _) in enumerate(cases)]
    with llm_service.client() as client:
        response = submit(client, lines)
    assert response.status_code == 400
    faults = response.json()["error"]["lines"]
    for n, (name, _, param) in enumerate(cases):
        named = [fault for fault in faults if fault["line"] == n + 2]
        assert named, name
        assert named[0]["custom_id"] == f"bad-{n}" and named[0]["param"] == param, (name, named)
    assert not [fault for fault in faults if fault["line"] == 1]


def test_uploaded_file_with_prompt_faults_ends_failed_naming_them(
    llm_service: RunningService, greet: str
) -> None:
    good = {"lang": "en", "name": "Ada", "marker": "m"}
    lines = [
        prompt_line("ok", greet, good),
        prompt_line("missing", greet, {"lang": "en"}),
        prompt_line("unknown", "no-such-prompt", good),
    ]
    with llm_service.client() as client:
        uploaded = client.post(
            "/v1/files", files={"file": ("p.jsonl", to_jsonl(lines))}, data={"purpose": "batch"}
        ).json()
        created = client.post(
            "/v1/batches",
            json={"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions"},
        ).json()
    assert created["status"] == "failed"
    named = {(error["line"], error["param"]) for error in created["errors"]["data"]}
    assert named == {(2, "body.variables"), (3, "body.prompt_slug")}


def from_prompt(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post("/v1/batches/from_prompt", json=body, headers=headers)


def test_from_prompt_makes_one_line_per_variable_set(
    llm_service: RunningService, upstream: StandinUpstream, greet: str
) -> None:
    marker = unique("rows")
    rows = [{"lang": "en", "name": name, "marker": marker} for name in ("Ann", "Ben", "Cy")]
    base = {"prompt_slug": greet, "model": "echo-model", "variables": rows}
    with llm_service.client() as client:
        default_ids = from_prompt(client, {**base, "metadata": {"form": "dashboard"}}).json()
        named_ids = from_prompt(client, {**base, "custom_ids": ["a", "b", "c"]}).json()
        default_ids = wait_finished(client, default_ids["id"])
        named_ids = wait_finished(client, named_ids["id"])
        default_out = output_lines(client, default_ids["id"])
        named_out = output_lines(client, named_ids["id"])
        mismatched = from_prompt(client, {**base, "custom_ids": ["a"]})
        bad_row = from_prompt(client, {**base, "variables": [rows[0], {"lang": "en"}]})

    assert default_ids["metadata"] == {"form": "dashboard"}
    assert default_ids["endpoint"] == "/v1/chat/completions"
    assert [item["custom_id"] for item in default_out] == ["row-1", "row-2", "row-3"]
    assert [item["custom_id"] for item in named_out] == ["a", "b", "c"]
    assert all(item["response"]["status_code"] == 200 for item in default_out + named_out)
    greeted = sorted(
        call.body["messages"][1]["content"] for call in upstream.calls_matching(marker)
    )
    assert greeted == sorted([f"Hello {name}, {marker}" for name in ("Ann", "Ben", "Cy")] * 2)
    assert mismatched.status_code == 400 and mismatched.json()["error"]["param"] == "custom_ids"
    fault = bad_row.json()["error"]["lines"][0]
    assert (fault["line"], fault["custom_id"], fault["param"]) == (2, "row-2", "body.variables")


def test_from_prompt_takes_10000_variable_sets(llm_service: RunningService, redis_url: str) -> None:
    slug = unique("bulk")
    with llm_service.client() as client:
        create_prompt(client, slug, user("Row {{ n }}: {{ text }}"))
        rows = [{"n": n, "text": f"Ticket text number {n}."} for n in range(10_000)]
        started = time.monotonic()
        created = from_prompt(
            client, {"prompt_slug": slug, "model": "echo-model", "variables": rows}
        )
        accepted_in = time.monotonic() - started
        assert created.status_code == 200, created.text
        # Running 10,000 lines is the ordinary batch machinery; stop here to spare the time.
        client.post(f"/v1/batches/{created.json()['id']}/cancel")
        batch = wait_finished(client, created.json()["id"])
    assert batch["request_counts"]["total"] == 10_000
    assert accepted_in < 10, f"accepting 10,000 variable sets took {accepted_in:.1f} s"
    stored = redis.Redis.from_url(redis_url)
    try:
        lines = stored_input_lines(stored, batch["id"])
    finally:
        stored.close()
    count, first, last = len(lines), lines[0], lines[-1]
    assert count == 10_000
    assert orjson.loads(first)["custom_id"] == "row-1"
    assert orjson.loads(last)["custom_id"] == "row-10000"
    assert orjson.loads(last)["body"]["messages"] == user("Row 9999: Ticket text number 9999.")


def test_from_prompt_honours_idempotency_keys(llm_service: RunningService, greet: str) -> None:
    key = secrets.token_hex(8)
    body = {
        "prompt_slug": greet,
        "model": "echo-model",
        "variables": [{"lang": "en", "name": "I", "marker": "m"}],
    }
    with llm_service.client() as client:
        first = from_prompt(client, body, **{"Idempotency-Key": key})
        again = from_prompt(client, body, **{"Idempotency-Key": key})
        other = from_prompt(
            client, {**body, "model": "acme/echo-model"}, **{"Idempotency-Key": key}
        )
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_task_line_renders_the_template_as_its_instructions(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    marker = unique("classify")
    slug = unique("refund-policy")
    with llm_service.client() as client:
        create_prompt(
            client,
            slug,
            [
                {"role": "system", "content": "Only refunds over {{ amount }} dollars count."},
                {"role": "user", "content": "Tickets come from {{ channel }}."},
            ],
            model_config={"temperature": 0.3, "max_tokens": 777, "stop": ["END"]},
        )
        labels = [{"name": "refund", "rubric": "Does the customer ask for money back?"}]
        _, output = run_batch(
            client,
            [
                prompt_line(
                    "ticket",
                    slug,
                    {"amount": 50, "channel": "email", "text": f"Refund $80 please. {marker}"},
                    model="classify",
                    labels=labels,
                )
            ],
        )
    (call,) = upstream.calls_matching(marker)
    system = call.body["messages"][0]["content"]
    assert "Only refunds over 50 dollars count.\n\nTickets come from email." in system
    assert '"refund"' in system, "the task still owns its labels and output schema"
    assert f"Refund $80 please. {marker}" in call.body["messages"][-1]["content"]
    assert call.body["temperature"] == 0.3
    # Settings the task does not take are not applied to it.
    assert call.body.get("max_tokens") != 777 and "stop" not in call.body
    assert content_of(output[0])["labels"][0]["name"] == "refund"


def test_realtime_chat_renders_a_stored_prompt(
    llm_service: RunningService, upstream: StandinUpstream, greet: str
) -> None:
    marker = unique("realtime")
    body = {"model": "echo-model", "prompt_slug": greet, "temperature": 0.7}
    with llm_service.client() as client:
        answered = client.post(
            "/v1/chat/completions",
            json={**body, "variables": {"lang": "de", "name": "Eve", "marker": marker}},
        )
        missing = client.post("/v1/chat/completions", json={**body, "variables": {"lang": "de"}})
        embeddings = client.post(
            "/v1/embeddings", json={"model": "embed-model", "input": "x", "prompt_slug": greet}
        )
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] == f"echo: Hello Eve, {marker}"
    (call,) = upstream.calls_matching(marker)
    assert call.body["messages"][0] == {"role": "system", "content": "Answer in DE."}
    assert (call.body["temperature"], call.body["max_tokens"]) == (0.7, 40)
    assert not PROMPT_FIELDS & call.body.keys()
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "variables"
    assert "'marker', 'name'" in missing.json()["error"]["message"]
    assert embeddings.status_code == 400 and embeddings.json()["error"]["param"] == "prompt_slug"


def test_stored_line_records_the_version_it_used(
    llm_service: RunningService, redis_url: str, greet: str
) -> None:
    with llm_service.client() as client:
        batch, _ = run_batch(
            client, [prompt_line("rec", greet, {"lang": "en", "name": "R", "marker": "m"})]
        )
    stored = redis.Redis.from_url(redis_url)
    try:
        (raw,) = stored_input_lines(stored, batch["id"])
    finally:
        stored.close()
    kept = orjson.loads(raw)
    assert kept["prompt"] == {"slug": greet, "version": 1}
    assert not PROMPT_FIELDS & kept["body"].keys()


def test_rendering_is_held_to_the_line_and_batch_size_limits(
    redis_url: str, tmp_path: Path
) -> None:
    # Small lines and bodies of its own, so a short template can expand past them.
    service = start_service(
        redis_url, tmp_path, workers=0, max_line_bytes="4000", max_body_bytes="20000"
    )
    try:
        with service.client() as client:
            create_prompt(client, "echo-ten", user("{{ t }}" * 10))
            # One variable of 500 characters renders to 5,000: over the line limit
            too_long = submit(client, [prompt_line("long", "echo-ten", {"t": "x" * 500})])
            # Twelve lines of 3,000 rendered characters each: over the batch limit together
            rows = [{"t": "y" * 300} for _ in range(12)]
            too_many = client.post(
                "/v1/batches/from_prompt",
                json={"prompt_slug": "echo-ten", "model": "echo-model", "variables": rows},
            )
    finally:
        service.stop()
    fault = too_long.json()["error"]["lines"][0]
    assert fault["param"] == "body.prompt_slug" and "over 4000 characters" in fault["message"]
    assert too_many.status_code == 413
    assert "20000 bytes" in too_many.json()["error"]["message"]

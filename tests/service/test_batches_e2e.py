"""Batches end to end: HTTP in, Redis queue, worker process, stand-in upstream, JSONL out."""

from __future__ import annotations

import orjson

from standins.upstream import StandinUpstream
from tests.support.batches import content_of, line, run_batch, submit, wait_finished
from tests.support.service import RunningService

NEWS = (
    "Acme Corp opened a new plant in Lyon on Monday. Chief executive Marie Curie said "
    "the site will employ 400 people. Production starts in March."
)


def extract_line(custom_id: str, text: str = NEWS) -> dict[str, object]:
    return line(
        custom_id,
        {
            "model": "extract",
            "text": text,
            "entities": {"organization": "a company", "city": "a city name"},
        },
    )


def summarize_line(custom_id: str, text: str = NEWS) -> dict[str, object]:
    return line(custom_id, {"model": "summarize", "text": text, "max_tokens": 60})


def classify_line(custom_id: str, text: str = NEWS) -> dict[str, object]:
    return line(
        custom_id,
        {
            "model": "classify",
            "text": text,
            "labels": [
                {"name": "Acme", "rubric": "Does the text mention Acme?"},
                {"name": "weather", "rubric": "Is the text about the weather?"},
            ],
        },
    )


def test_extract_batch_returns_grounded_entities(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        batch, output = run_batch(client, [extract_line("news-1")])

    assert batch["status"] == "completed"
    assert batch["request_counts"] == {
        "total": 1,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    (result,) = output
    assert result["custom_id"] == "news-1"
    assert result["error"] is None
    assert result["response"]["status_code"] == 200
    body = result["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert set(body["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    entities = content_of(result)["entities"]
    assert entities, "the stand-in names capitalised words, so some entity is expected"
    for entity in entities:
        assert entity["type"] in {"organization", "city"}
        assert NEWS[entity["start"] : entity["end"]] == entity["text"]


def test_summarize_batch_returns_summary(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        batch, output = run_batch(client, [summarize_line("sum-1")])
    assert batch["status"] == "completed"
    summary = content_of(output[0])["summary"]
    assert summary == "Acme Corp opened a new plant in Lyon on Monday."


def test_classify_batch_returns_one_entry_per_label_in_order(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        _, output = run_batch(client, [classify_line("cls-1")])
    labels = content_of(output[0])["labels"]
    assert [label["name"] for label in labels] == ["Acme", "weather"]
    assert all(isinstance(label["match"], bool) for label in labels)


def test_mixed_batch_keeps_order_and_custom_ids(llm_service: RunningService) -> None:
    lines = []
    for n in range(30):
        maker = (extract_line, summarize_line, classify_line)[n % 3]
        lines.append(maker(f"mixed-{n:02d}", f"Story {n}: {NEWS}"))
    with llm_service.client() as client:
        batch, output = run_batch(client, lines)
    assert batch["request_counts"] == {
        "total": 30,
        "completed": 30,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert [item["custom_id"] for item in output] == [item["custom_id"] for item in lines]
    assert "summary" in content_of(output[1])
    assert "labels" in content_of(output[2])


def test_failed_line_does_not_fail_neighbours(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    lines = [
        summarize_line("ok-before"),
        summarize_line("always-500", f"{NEWS} [[fail:500]]"),
        summarize_line("ok-after"),
    ]
    with llm_service.client() as client:
        batch, output = run_batch(client, lines)

    assert batch["status"] == "completed"
    assert batch["request_counts"] == {
        "total": 3,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
    }
    ok_before, failed, ok_after = output
    assert ok_before["error"] is None and ok_after["error"] is None
    assert failed["custom_id"] == "always-500"
    assert failed["response"] is None
    assert failed["error"]["code"] == "upstream_error"
    assert failed["error"]["attempts"] == 3
    assert len(upstream.calls_matching("always-500")) == 0  # custom_id never reaches the LLM
    assert len(upstream.calls_matching(f"{NEWS} [[fail:500]]")) == 3


def test_rate_limited_line_is_retried_after_retry_after(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    marker = "[[fail:429:1]] [[retry-after:1]] retry-after-check"
    with llm_service.client() as client:
        _, output = run_batch(client, [summarize_line("limited", f"{NEWS} {marker}")])

    assert output[0]["error"] is None
    calls = upstream.calls_matching(marker)
    assert len(calls) == 2
    assert calls[1].at - calls[0].at >= 1.0


def test_server_error_once_is_retried_and_succeeds(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    marker = "[[fail:503:2]] transient-503"
    with llm_service.client() as client:
        _, output = run_batch(client, [classify_line("flaky", f"{NEWS} {marker}")])
    assert output[0]["error"] is None
    assert len(upstream.calls_matching(marker)) == 3


def test_invalid_model_output_is_asked_again_once(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    fixed = "[[schema:1]] wrong-once"
    broken = "[[schema:9]] wrong-always"
    with llm_service.client() as client:
        _, output = run_batch(
            client,
            [
                summarize_line("fixed", f"{NEWS} {fixed}"),
                summarize_line("broken", f"{NEWS} {broken}"),
            ],
        )
    assert output[0]["error"] is None
    assert output[1]["error"]["code"] == "invalid_model_output"
    assert output[1]["response"] is None


def test_user_text_with_template_syntax_stays_literal(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    text = "Render me {{ 7*7 }} and {% for x in range(3) %}loop{% endfor %} literally-now."
    with llm_service.client() as client:
        _, output = run_batch(client, [summarize_line("jinja", text)])
    assert output[0]["error"] is None
    (call,) = upstream.calls_matching("literally-now")
    prompt = call.body["messages"][-1]["content"]
    assert "{{ 7*7 }}" in prompt and "49" not in prompt
    assert "{% for x in range(3) %}" in prompt


def test_upstream_receives_key_and_structured_output_schema(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    with llm_service.client() as client:
        run_batch(client, [classify_line("schema-check", f"{NEWS} schema-check-marker")])
    (call,) = upstream.calls_matching("schema-check-marker")
    assert call.auth_ok
    assert call.body["model"] == "standin-model"
    response_format = call.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["type"] == "object"


def test_output_before_finish_is_409(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = submit(client, [summarize_line("slow", f"{NEWS} [[slow:2]] slow-line")])
        batch_id = response.json()["id"]
        early = client.get(f"/v1/batches/{batch_id}/output")
        assert early.status_code == 409
        assert early.json()["error"]["code"] == "batch_not_finished"
        wait_finished(client, batch_id)
        assert client.get(f"/v1/batches/{batch_id}/output").status_code == 200


def test_status_counts_move_while_running(llm_service: RunningService) -> None:
    lines = [
        summarize_line(f"slow-{n}", f"{NEWS} [[slow:{0.3 * (n + 1):.1f}]] moving-{n}")
        for n in range(4)
    ]
    with llm_service.client() as client:
        batch = submit(client, lines).json()
        assert batch["status"] == "in_progress"
        assert batch["request_counts"] == {
            "total": 4,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "expired": 0,
        }
        assert isinstance(batch["created_at"], int) and batch["completed_at"] is None
        seen = set()
        while batch["status"] == "in_progress":
            seen.add(batch["request_counts"]["completed"])
            batch = client.get(f"/v1/batches/{batch['id']}").json()
        assert batch["status"] == "completed"
        assert batch["completed_at"] >= batch["created_at"]
        assert len(seen) >= 2, "counts should be seen moving"


def test_json_submission_with_metadata(llm_service: RunningService) -> None:
    payload = {"requests": [summarize_line("json-1")], "metadata": {"team": "docs"}}
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches",
            content=orjson.dumps(payload),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
        batch = wait_finished(client, response.json()["id"])
    assert batch["metadata"] == {"team": "docs"}
    assert batch["status"] == "completed"


def test_crlf_and_trailing_blank_lines_are_accepted(llm_service: RunningService) -> None:
    body = (
        orjson.dumps(summarize_line("crlf-1"))
        + b"\r\n"
        + orjson.dumps(summarize_line("crlf-2"))
        + b"\r\n\r\n\n"
    )
    with llm_service.client() as client:
        response = client.post(
            "/v1/batches", content=body, headers={"content-type": "application/x-ndjson"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["request_counts"]["total"] == 2

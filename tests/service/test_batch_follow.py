"""Following a batch while it runs: partial output, the event stream, counts that add up."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import orjson
from httpx_sse import connect_sse

from tests.support.batches import line, submit, wait_finished
from tests.support.service import RunningService

NEWS = "Acme Corp opened a new plant in Lyon on Monday. Production starts in March."


def summarize(custom_id: str, directive: str = "") -> dict[str, Any]:
    text = f"{NEWS} {directive} {custom_id}-{secrets.token_hex(4)}"
    return line(custom_id, {"model": "summarize", "text": text, "max_tokens": 40})


def finished(counts: dict[str, int]) -> int:
    return counts["completed"] + counts["failed"] + counts["cancelled"] + counts["expired"]


def test_partial_output_mid_run_has_only_finished_lines_in_input_order(
    llm_service: RunningService,
) -> None:
    # Given a batch whose even lines answer at once and whose odd lines take a while
    lines = [summarize(f"p-{n}", "[[slow:3]]" if n % 2 else "") for n in range(8)]
    with llm_service.client() as client:
        batch_id = submit(client, lines).json()["id"]
        deadline = time.monotonic() + 20
        while finished(client.get(f"/v1/batches/{batch_id}").json()["request_counts"]) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        # When its partial output is read while the slow lines run
        early = client.get(f"/v1/batches/{batch_id}/output", params={"partial": "true"})
        plain = client.get(f"/v1/batches/{batch_id}/output")
        wait_finished(client, batch_id)
        late = client.get(f"/v1/batches/{batch_id}/output", params={"partial": "true"})
        full = client.get(f"/v1/batches/{batch_id}/output")

    # Then it holds finished lines only, in input order, and says it is incomplete
    assert early.status_code == 200, early.text
    assert early.headers["x-textbatch-incomplete"] == "true"
    shown = [orjson.loads(raw) for raw in early.content.splitlines()]
    ids = [item["custom_id"] for item in shown]
    assert set(ids) >= {"p-0", "p-2", "p-4", "p-6"}
    assert len(ids) < len(lines)
    assert ids == sorted(ids, key=lambda custom_id: int(custom_id.split("-")[1]))
    assert int(early.headers["x-textbatch-lines"]) <= len(shown)
    assert all(item["error"] is None for item in shown)
    assert plain.status_code == 409
    # Once ended, partial is the full output.
    assert late.headers["x-textbatch-incomplete"] == "false"
    assert late.headers["x-textbatch-lines"] == str(len(lines))
    assert late.content == full.content


def test_event_stream_shows_counts_moving_and_ends_with_the_final_batch(
    llm_service: RunningService,
) -> None:
    lines = [summarize(f"e-{n}", f"[[slow:{0.4 * (n + 1):.1f}]]") for n in range(4)]
    events: list[tuple[str, dict[str, Any]]] = []
    with llm_service.client() as client:
        batch_id = submit(client, lines).json()["id"]
        with connect_sse(client, "GET", f"/v1/batches/{batch_id}/events") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            events = [(event.event, orjson.loads(event.data)) for event in source.iter_sse()]
        refused = httpx.get(f"{llm_service.url}/v1/batches/{batch_id}/events")
        with llm_service.client(llm_service.keys[1]) as other:
            foreign = other.get(f"/v1/batches/{batch_id}/events")

    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"batch"}
    seen = [finished(batch["request_counts"]) for _, batch in events]
    assert seen == sorted(seen) and len(set(seen)) >= 3, "counts should be seen moving"
    final = events[-1][1]
    assert final["id"] == batch_id and final["status"] == "completed"
    assert final["request_counts"]["completed"] == 4
    assert refused.status_code == 401
    assert foreign.status_code == 404


def test_event_stream_of_a_finished_batch_is_one_done_event(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        batch_id = submit(client, [summarize("d-1")]).json()["id"]
        wait_finished(client, batch_id)
        with connect_sse(client, "GET", f"/v1/batches/{batch_id}/events") as source:
            events = [(event.event, orjson.loads(event.data)) for event in source.iter_sse()]
    assert [(name, batch["status"]) for name, batch in events] == [("done", "completed")]


def test_cancelled_batch_counts_its_unrun_lines_as_cancelled_and_they_add_up(
    llm_service: RunningService,
) -> None:
    # Given a batch of slow lines, cancelled as soon as it is accepted
    lines = [summarize(f"x-{n}", "[[slow:1]]") for n in range(60)]
    with llm_service.client() as client:
        batch_id = submit(client, lines).json()["id"]
        assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
        batch = wait_finished(client, batch_id)
        retried = client.post(f"/v1/batches/{batch_id}/retry", json={"codes": ["batch_cancelled"]})
        retry = wait_finished(client, retried.json()["id"])

    # Then unrun lines are cancelled, not failed, and the counts add up to the total
    counts = batch["request_counts"]
    assert batch["status"] == "cancelled"
    assert counts["failed"] == 0 and counts["expired"] == 0
    assert counts["cancelled"] > 0
    assert finished(counts) == counts["completed"] + counts["cancelled"] == 60
    # And a retry of what the cancel stopped runs exactly those lines
    assert retry["request_counts"]["total"] == counts["cancelled"]
    assert retry["request_counts"]["completed"] == counts["cancelled"]

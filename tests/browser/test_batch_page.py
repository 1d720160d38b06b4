"""A batch's page in the browser: an uploaded JSONL file, readable results, faults, cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import open_view, sign_in
from tests.support.batches import content_of, line, to_jsonl, wait_finished
from tests.support.service import RunningService

pytestmark = pytest.mark.browser

INVOICE = "Ada Lovelace paid Charles Babbage in London on Friday."


DROP = """([name, text]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], name, { type: "application/jsonl" }));
    document.querySelector(".dropzone").dispatchEvent(
        new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def upload(page: Page, path: Path, *, drop: bool = False) -> str:
    """Submit ``path`` through the upload form (chosen or dropped); the batch page's id."""
    open_view(page, "#/new?upload")
    if drop:
        page.evaluate(DROP, [path.name, path.read_text()])
    else:
        page.set_input_files("#jsonl-file", str(path))
    expect(page.locator(".dropzone")).to_contain_text(path.name)
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/dashboard#/batches/batch_*")
    return page.url.rsplit("/", 1)[1]


def output_of(service: RunningService, batch_id: str) -> list[dict[str, Any]]:
    with service.client() as client:
        served = client.get(f"/v1/batches/{batch_id}/output").content
    return [orjson.loads(raw) for raw in served.splitlines()]


def test_an_uploaded_file_shows_entities_in_their_text_and_label_chips(
    page: Page, dashboard_service: RunningService, tmp_path: Path
) -> None:
    lines = [
        line(
            "invoice",
            {
                "model": "extract",
                "text": INVOICE,
                "entities": {"person": "a person's name", "location": "a place"},
            },
        ),
        line(
            "ticket",
            {
                "model": "classify",
                "text": "I want my money back for the broken kettle.",
                "labels": [
                    {"name": "refund", "rubric": "Does it ask for money back?"},
                    {"name": "praise", "rubric": "Does it praise the product?"},
                ],
            },
        ),
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(to_jsonl(lines))
    sign_in(page, dashboard_service, dashboard_service.keys[0])

    batch_id = upload(page, source)
    expect(page.locator(".page-head .badge")).to_have_text("completed", timeout=30_000)
    extract, classify = output_of(dashboard_service, batch_id)

    # Every entity is marked on its own characters of the input text
    entities = content_of(extract)["entities"]
    assert entities, "the stand-in found no entities to show"
    invoice = page.locator(".result-line[data-custom-id='invoice']")
    expect(invoice.locator(".highlighted")).to_contain_text("paid")
    marks = invoice.locator("mark.entity")
    expect(marks).to_have_count(len(entities))
    shown = [
        (mark.get_attribute("title"), mark.evaluate("m => m.firstChild.textContent"))
        for mark in marks.all()
    ]
    assert shown == [
        (f"{e['type']} ({e['alignment']})", INVOICE[e["start"] : e["end"]])
        for e in sorted(entities, key=lambda e: e["start"])
    ]
    # And each label is a chip saying whether it matched
    chips = page.locator(".result-line[data-custom-id='ticket'] .chip.label")
    expected = [
        ("✓ " if label["match"] else "✗ ") + label["name"]
        for label in content_of(classify)["labels"]
    ]
    expect(chips).to_have_text(expected)
    with dashboard_service.client() as client:
        batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["input_file_id"] and batch["request_counts"]["completed"] == 2


def test_a_dropped_file_with_faulty_lines_fails_naming_each_line_and_field(
    page: Page, dashboard_service: RunningService, tmp_path: Path
) -> None:
    good = line("fine", {"model": "summarize", "text": "All is well."})
    source = tmp_path / "faulty.jsonl"
    source.write_bytes(
        to_jsonl([good, line("no-text", {"model": "summarize"})]) + b'{"custom_id": "broken", \n'
    )
    sign_in(page, dashboard_service, dashboard_service.keys[0])

    batch_id = upload(page, source, drop=True)
    expect(page.locator(".page-head .badge")).to_have_text("failed", timeout=30_000)
    with dashboard_service.client() as client:
        errors = client.get(f"/v1/batches/{batch_id}").json()["errors"]["data"]
    rows = page.locator(".batch-errors tbody tr")
    expect(rows).to_have_count(len(errors))
    for row, error in zip(rows.all(), errors, strict=True):
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(str(error["line"]))
        expect(cells.nth(2)).to_have_text(error["param"] or "—")
        expect(cells.nth(4)).to_have_text(error["message"])
    assert [error["line"] for error in errors] == [2, 3]


def test_cancel_stops_a_running_batch_and_the_page_follows_it(
    page: Page, dashboard_service: RunningService, tmp_path: Path
) -> None:
    lines = [
        line(f"slow-{n}", {"model": "summarize", "text": f"Line {n} [[slow:2]]"}) for n in range(24)
    ]
    source = tmp_path / "slow.jsonl"
    source.write_bytes(to_jsonl(lines))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, dashboard_service, dashboard_service.keys[0])

    batch_id = upload(page, source)
    expect(page.locator(".page-head .badge")).to_have_text("in progress", timeout=15_000)
    # The page follows the running batch through its event stream, not by polling.
    events_url = f"/v1/batches/{batch_id}/events"
    for _ in range(50):
        if any(url.endswith(events_url) for url in requested):
            break
        page.wait_for_timeout(100)
    assert any(url.endswith(events_url) for url in requested)
    page.get_by_role("button", name="Cancel batch").click()
    expect(page.locator(".page-head .badge")).to_have_text("cancelled", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel batch")).to_have_count(0)

    with dashboard_service.client() as client:
        batch = wait_finished(client, batch_id)
    counts = batch["request_counts"]
    assert batch["status"] == "cancelled" and counts["completed"] < counts["total"]
    expect(page.locator(".card .counts").first).to_have_text(
        f"{counts['completed']} done · {counts['failed']} failed · "
        f"{counts['cancelled']} cancelled · {counts['total']} total"
    )
    cancelled = [item for item in output_of(dashboard_service, batch_id) if item["error"]]
    assert {item["error"]["code"] for item in cancelled} == {"batch_cancelled"}
    with page.expect_download() as errors:
        page.get_by_role("button", name="Download errors").click()
    with dashboard_service.client() as client:
        error_file = client.get(f"/v1/files/{batch['error_file_id']}/content").content
    assert Path(errors.value.path()).read_bytes() == error_file
    assert len(error_file.splitlines()) == len(cancelled)
    first = page.locator(".result-line").first
    expect(first).to_be_visible()
    assert json.loads(first.locator("pre.raw").inner_text())["custom_id"] == "slow-0"

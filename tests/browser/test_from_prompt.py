"""New batch → From prompt in the browser: preview, faults per row, submit, watch, download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import open_view, sign_in
from tests.support.batches import content_of
from tests.support.prompts import create_prompt, unique
from tests.support.service import RunningService

pytestmark = pytest.mark.browser

TEMPLATE = "Summarize for {{ audience }} in one sentence."
TEXTS = [
    "The council approved the new budget on Monday. Road repairs get most of the money.",
    "Heavy rain closed the coastal road for two days. Crews cleared the debris on Friday.",
    "The library opens a second branch in March. It will lend tools as well as books.",
]


def summary_prompt(service: RunningService) -> str:
    slug = unique("brief")
    with service.client() as client:
        create_prompt(client, slug, [{"role": "user", "content": TEMPLATE}])
    return slug


def fill_from_prompt(page: Page, slug: str, model: str, variables: str) -> None:
    open_view(page, "#/new")
    page.select_option("#prompt-slug", slug)
    expect(page.locator(".chips .chip", has_text="{{ audience }}")).to_be_visible()
    page.fill("#model", model)
    page.fill("#variables", variables)


def batch_ids(service: RunningService) -> list[str]:
    with service.client() as client:
        return [batch["id"] for batch in client.get("/v1/batches?limit=100").json()["data"]]


def test_a_batch_from_a_prompt_completes_and_downloads_exactly_what_the_api_serves(
    page: Page, dashboard_service: RunningService, tmp_path: Path
) -> None:
    slug = summary_prompt(dashboard_service)
    sets = [{"audience": f"readers {n}", "text": text} for n, text in enumerate(TEXTS, 1)]
    sign_in(page, dashboard_service, dashboard_service.keys[0])

    fill_from_prompt(page, slug, "summarize", json.dumps(sets))
    # The generated lines are shown before anything is sent, with the rendered message
    expect(page.locator("#preview-summary")).to_have_text("3 line(s) from JSON · ready")
    second = page.locator(".preview .line[data-row='2']")
    expect(second.locator(".jsonl")).to_contain_text('"custom_id":"row-2"')
    expect(second.locator(".rendered")).to_have_text("userSummarize for readers 2 in one sentence.")
    page.click("#prompt-form button[type=submit]")

    # Then the page is the new batch's, and it runs to completion
    page.wait_for_url("**/dashboard#/batches/batch_*")
    batch_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".page-head .badge")).to_have_text("completed", timeout=30_000)
    expect(page.locator(".card .counts").first).to_have_text("3 done · 0 failed · 3 total")
    with dashboard_service.client() as client:
        batch = client.get(f"/v1/batches/{batch_id}").json()
        served = client.get(f"/v1/batches/{batch_id}/output").content
        output_file = client.get(f"/v1/files/{batch['output_file_id']}/content").content
    assert batch["metadata"] is None and batch["request_counts"]["completed"] == 3

    # Each result shows its summary; opening one shows the line as the API gave it
    lines = [json.loads(raw) for raw in served.splitlines()]
    results = page.locator(".result-line")
    expect(results).to_have_count(3)
    for item, line in zip(results.all(), lines, strict=True):
        expect(item.locator(".result.summary")).to_have_text(content_of(line)["summary"])
    opened = page.locator(".result-line[data-custom-id='row-3']")
    opened.get_by_role("button", name="Show JSON").click()
    assert json.loads(opened.locator("pre.raw").inner_text()) == lines[2]

    # The downloads are byte for byte what GET /output and the output file give
    with page.expect_download() as all_lines:
        page.get_by_role("button", name="Download all lines").click()
    with page.expect_download() as output:
        page.get_by_role("button", name="Download output").click()
    assert Path(all_lines.value.path()).read_bytes() == served
    assert all_lines.value.suggested_filename == f"{batch_id}_all.jsonl"
    assert Path(output.value.path()).read_bytes() == output_file


def test_a_faulty_variable_set_names_its_row_and_nothing_is_submitted(
    page: Page, dashboard_service: RunningService
) -> None:
    slug = summary_prompt(dashboard_service)
    before = batch_ids(dashboard_service)
    sign_in(page, dashboard_service, dashboard_service.keys[0])
    csv = f"audience,text\nexperts,{TEXTS[0]}\n"
    rows = [
        {"audience": "experts", "text": TEXTS[0]},
        {"text": TEXTS[1]},
        {"audience": "all", "text": True},
    ]

    fill_from_prompt(page, slug, "summarize", json.dumps(rows))
    expect(page.locator("#preview-summary")).to_have_text("3 line(s) from JSON · 2 with faults")
    expect(page.locator(".line[data-row='2'] .fault")).to_have_text(
        "Row 2: missing variable 'audience'"
    )
    expect(page.locator(".line[data-row='3'] .fault")).to_have_text(
        "Row 3: variables.text is a boolean; a variable must be a string or a number"
    )
    expect(page.locator(".line[data-row='1'] .fault")).to_have_count(0)
    submit = page.locator("#prompt-form button[type=submit]")
    expect(submit).to_be_disabled()
    page.locator("#prompt-form").evaluate("form => form.requestSubmit()")

    # A CSV with a header row reads the same way, and fixing the rows enables the button
    page.fill("#variables", csv)
    expect(page.locator("#preview-summary")).to_have_text("1 line(s) from CSV · ready")
    expect(submit).to_be_enabled()
    assert batch_ids(dashboard_service) == before


def test_line_faults_the_api_finds_are_shown_on_their_rows_and_make_no_batch(
    page: Page, dashboard_service: RunningService
) -> None:
    slug = summary_prompt(dashboard_service)
    before = batch_ids(dashboard_service)
    sign_in(page, dashboard_service, dashboard_service.keys[0])
    sets = [{"audience": "all", "text": text} for text in TEXTS[:2]]

    # extract needs its entities, which a variable set cannot give: the API says so per line
    fill_from_prompt(page, slug, "extract", json.dumps(sets))
    expect(page.locator("#preview-summary")).to_have_text("2 line(s) from JSON · ready")
    page.click("#prompt-form button[type=submit]")

    alert = page.locator("#new-batch-status .alert")
    expect(alert.locator("strong")).to_have_text("2 line fault(s) in the batch input")
    expect(alert.locator("tbody tr")).to_have_count(2)
    expect(alert.locator("tbody tr").first).to_contain_text("body.entities")
    expect(page.locator(".line[data-row='1'] .fault")).to_contain_text("Row 1: body.entities")
    assert batch_ids(dashboard_service) == before

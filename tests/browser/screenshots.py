"""Takes the README's dashboard screenshots: ``python -m tests.browser.screenshots [DIR]``.

It starts what the browser tests start (an embedded Valkey, textbatch with its offline
engine, a stand-in upstream for a slow pass-through batch), fills it with a few batches
and saves ``dashboard-batches.png``, ``dashboard-batch.png`` and ``dashboard-from-prompt.png``
into DIR (``docs``).
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from playwright.sync_api import Page, expect, sync_playwright

from standins.upstream import StandinUpstream
from tests.browser.dashboard import CHROMIUM, open_view, sign_in
from tests.support.batches import line, to_jsonl, wait_finished
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, start_service

# The list is short: leave out the empty page below it.
LIST_CLIP = {"x": 0, "y": 0, "width": 1280, "height": 420}
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "mixed.jsonl"
BRIEFS = [
    "Ticket 4411: the export to CSV drops every row after the first thousand.",
    "Ticket 4412: the invoice page shows the wrong currency for customers in Canada.",
    "Ticket 4413: password reset emails arrive about twenty minutes late.",
]


def fill(client: httpx.Client) -> str:
    """A few batches of every kind; the id of the one whose page is shown."""
    client.post(
        "/v1/prompts",
        json={
            "slug": "triage-ticket",
            "messages": [
                {"role": "user", "content": "Summarize for the {{ team }} team: {{ text }}"}
            ],
        },
    )
    made = client.post(
        "/v1/batches/from_prompt",
        json={
            "prompt_slug": "triage-ticket",
            "model": "summarize",
            "variables": [{"team": "support", "text": text} for text in BRIEFS],
            "metadata": {"source": "helpdesk"},
        },
    ).json()
    wait_finished(client, made["id"])
    upload = client.post(
        "/v1/files", files={"file": (SAMPLE.name, SAMPLE.read_bytes())}, data={"purpose": "batch"}
    ).json()
    shown = client.post(
        "/v1/batches",
        json={
            "input_file_id": upload["id"],
            "endpoint": "/v1/chat/completions",
            "metadata": {"project": "q2-backoffice", "owner": "data-team"},
        },
    ).json()
    wait_finished(client, shown["id"])
    slow = [
        line(
            f"chat-{n}",
            {
                "model": "acme/echo-model",
                "messages": [{"role": "user", "content": f"Draft reply {n} [[slow:3]]"}],
            },
        )
        for n in range(120)
    ]
    client.post(
        "/v1/batches", content=to_jsonl(slow), headers={"content-type": "application/jsonl"}
    )
    return str(shown["id"])


def shoot(page: Page, service: RunningService, shown: str, out: Path) -> None:
    sign_in(page, service, service.keys[0])
    expect(page.locator(".batches .badge", has_text="in progress")).to_be_visible()
    time.sleep(3)  # lets the running batch's bar and rate move off zero
    page.screenshot(path=str(out / "dashboard-batches.png"), clip=LIST_CLIP)
    open_view(page, f"#/batches/{shown}")
    expect(page.locator(".result-line").first).to_be_visible()
    page.screenshot(path=str(out / "dashboard-batch.png"), full_page=True)
    open_view(page, "#/new?prompt=triage-ticket")
    expect(page.locator("#prompt-version option")).not_to_have_count(0)
    variables = [{"team": "billing", "text": BRIEFS[1]}, {"team": "platform"}]
    page.fill("#model", "summarize")
    page.fill("#variables", orjson.dumps(variables, option=orjson.OPT_INDENT_2).decode())
    expect(page.locator(".line .fault").first).to_be_visible()
    page.screenshot(path=str(out / "dashboard-from-prompt.png"), full_page=True)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = [f"tb-{secrets.token_hex(16)}"]
    with (
        real_redis() as redis_url,
        StandinUpstream() as upstream,
        tempfile.TemporaryDirectory() as data,
    ):
        upstreams = orjson.dumps({"acme": {"base_url": upstream.base_url}}).decode()
        service = start_service(
            redis_url, Path(data), api_keys=keys[0], upstreams=upstreams, llm_concurrency="8"
        )
        service.keys = keys
        try:
            with service.client() as client:
                shown = fill(client)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(
                    viewport={"width": 1280, "height": 760}, device_scale_factor=1
                )
                shoot(page, service, shown, out)
                browser.close()
        finally:
            service.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))

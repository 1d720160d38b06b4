"""Signing in: the key stays in the tab's session storage, and a key sees only its own objects."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.dashboard import open_view, sign_in, watched_page
from tests.support.batches import line, submit
from tests.support.prompts import create_prompt, unique, user
from tests.support.service import RunningService

pytestmark = pytest.mark.browser


def test_the_page_allows_only_its_own_origin_and_is_never_framed(
    dashboard_service: RunningService,
) -> None:
    page = httpx.get(f"{dashboard_service.url}/dashboard")
    script = httpx.get(f"{dashboard_service.url}/dashboard/assets/app.js")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["content-security-policy"] == policy
    assert "/dashboard" not in httpx.get(f"{dashboard_service.url}/openapi.json").text


def test_a_wrong_key_is_refused_and_a_right_one_is_kept_only_for_the_tab(
    page: Page, dashboard_service: RunningService
) -> None:
    page.goto(f"{dashboard_service.url}/dashboard")
    page.fill("#api-key", "tb-not-a-key")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin .alert strong")).to_contain_text("API key")
    assert page.evaluate("sessionStorage.length") == 0

    sign_in(page, dashboard_service, dashboard_service.keys[0])
    assert page.evaluate("sessionStorage.getItem('textbatch.apiKey')") == dashboard_service.keys[0]
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
    page.reload()
    expect(page.locator("h1", has_text="Batches")).to_be_visible()
    page.click("#sign-out")
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_second_key_sees_none_of_the_first_keys_batches_files_or_prompts(
    browser: Browser, dashboard_service: RunningService
) -> None:
    first, second = dashboard_service.keys
    slug = unique("private")
    with dashboard_service.client(first) as client:
        create_prompt(client, slug, user("Only mine: {{ text }}"))
        response = submit(client, [line("mine", {"model": "summarize", "text": "Mine alone."})])
        batch_id = response.json()["id"]
        client.post("/v1/files", files={"file": ("mine.jsonl", b"{}\n")}, data={"purpose": "batch"})

    with watched_page(browser, dashboard_service) as owner:
        sign_in(owner, dashboard_service, first)
        expect(owner.locator(f"tr[data-batch-id='{batch_id}']")).to_be_visible()
        open_view(owner, "#/prompts")
        expect(owner.locator(f"tr[data-slug='{slug}']")).to_be_visible()

    with watched_page(browser, dashboard_service) as other:
        sign_in(other, dashboard_service, second)
        expect(other.locator(".batches .empty")).to_have_text("No batches yet. Make one.")
        open_view(other, "#/prompts")
        expect(other.locator(".prompts .empty")).to_have_text("No prompts yet.")
        open_view(other, "#/files")
        expect(other.locator(".files .empty")).to_have_text("No files yet.")
        # Naming the first key's objects directly gets the API's 404, shown as it gave it
        open_view(other, f"#/batches/{batch_id}")
        expect(other.locator(".alert code").first).to_have_text("not_found")
        open_view(other, f"#/prompts/{slug}")
        expect(other.locator(".alert code").first).to_have_text("not_found")

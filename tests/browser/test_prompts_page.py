"""Prompts in the browser: create one, read its versions, add a version and publish it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import open_view, sign_in
from tests.support.prompts import unique
from tests.support.service import RunningService

pytestmark = pytest.mark.browser


def test_a_prompt_made_in_the_page_gets_a_new_version_that_is_then_published(
    page: Page, dashboard_service: RunningService
) -> None:
    slug = unique("notes")
    sign_in(page, dashboard_service, dashboard_service.keys[0])
    open_view(page, "#/prompts")
    page.get_by_role("button", name="New prompt").click()
    page.fill("#new-slug", slug)
    page.locator("#new-prompt .message-row .content").fill("Summarize for {{ team }}.")
    page.locator("#new-prompt .settings").fill('{"temperature": 0.2}')
    page.get_by_role("button", name="Create prompt").click()

    # The prompt's page lists version 1, published, with its placeholder
    page.wait_for_url(f"**/dashboard#/prompts/{slug}")
    first = page.locator(".version[data-version='1']")
    expect(first.locator(".badge")).to_have_text("published")
    expect(first.locator(".chip")).to_have_text(["{{ team }}"])

    # A second version starts from the first; it is stored unpublished until published
    editor = page.locator("#add-version")
    editor.get_by_role("button", name="Add message").click()
    editor.locator(".message-row").nth(0).locator(".role").select_option("system")
    editor.locator(".message-row").nth(1).locator(".content").fill("{{ text }}")
    editor.get_by_role("button", name="Add version").click()
    second = page.locator(".version[data-version='2']")
    expect(second.locator(".chip")).to_have_text(["{{ team }}", "{{ text }}"])
    expect(first.locator(".badge")).to_have_text("published")
    second.get_by_role("button", name="Publish").click()
    expect(second.locator(".badge")).to_have_text("published")
    expect(first.get_by_role("button", name="Publish")).to_be_visible()

    with dashboard_service.client() as client:
        stored = client.get(f"/v1/prompts/{slug}").json()
    assert stored["published_version"] == 2
    assert stored["versions"][1]["messages"] == [
        {"role": "system", "content": "Summarize for {{ team }}."},
        {"role": "user", "content": "{{ text }}"},
    ]
    assert stored["versions"][1]["model_config"] == {"temperature": 0.2}
    assert stored["versions"][1]["placeholders"] == ["team", "text"]


def test_a_template_the_api_refuses_is_shown_with_its_field_and_stores_nothing(
    page: Page, dashboard_service: RunningService
) -> None:
    slug = unique("broken")
    sign_in(page, dashboard_service, dashboard_service.keys[0])
    open_view(page, "#/prompts")
    page.get_by_role("button", name="New prompt").click()
    page.fill("#new-slug", slug)
    page.locator("#new-prompt .message-row .content").fill("{% for x in y %}{{ x }}{% endfor %}")
    page.get_by_role("button", name="Create prompt").click()

    alert = page.locator(".alert")
    expect(alert.locator("strong")).to_contain_text("loops")
    expect(alert.locator(".facts code").first).to_have_text("invalid_template")
    expect(alert.locator(".facts")).to_contain_text("messages.0.content")
    with dashboard_service.client() as client:
        assert client.get(f"/v1/prompts/{slug}").status_code == 404

"""Driving the dashboard as a person does: a textbatch to point it at, sign-in, a watched page."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

from standins.upstream import StandinUpstream
from tests.support.service import RunningService, start_service

CHROMIUM = "/usr/bin/chromium"
# The key each page signs in with and a second one that must see none of its objects.
KEY_COUNT = 2


def start_dashboard_service(
    redis_url: str, upstream: StandinUpstream, upstream_key: str | None, data_dir: Path
) -> RunningService:
    """textbatch answering with the stand-in upstream, with keys no other test uses."""
    keys = [f"tb-browser-{secrets.token_hex(8)}" for _ in range(KEY_COUNT)]
    service = start_service(
        redis_url,
        data_dir,
        api_keys=",".join(keys),
        llm_base_url=upstream.base_url,
        llm_model="standin-model",
        llm_api_key=upstream_key or "",
        llm_max_attempts="2",
        llm_backoff_base="0.05",
        llm_backoff_max="0.2",
        llm_timeout="10",
        # Few lines at once, so a batch of slow lines is still running when it is cancelled.
        llm_concurrency="4",
        chunk_size="4",
    )
    service.keys = keys
    return service


@dataclass
class Watched:
    """What a page did that no test should see: script errors, CSP refusals, foreign requests."""

    origin: str
    secrets: list[str]
    problems: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        # An API error answer is logged by Chromium as a failed resource; the page shows it.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.problems.append(f"console: {message.text}")

    def on_request(self, request: Request) -> None:
        url = request.url
        if not (url.startswith(self.origin + "/") or url.startswith("blob:")):
            self.problems.append(f"request to another address: {url}")
        if any(secret in url for secret in self.secrets):
            self.problems.append(f"an API key in a URL: {url}")


@contextmanager
def watched_page(browser: Browser, service: RunningService) -> Iterator[Page]:
    """A fresh browser context (its own session storage) whose page must stay clean."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    watch = Watched(origin=service.url, secrets=service.keys)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.problems.append(f"script error: {error}"))
    page.on("request", watch.on_request)
    try:
        yield page
    finally:
        context.close()
    assert not watch.problems, "\n".join(watch.problems)


def sign_in(page: Page, service: RunningService, key: str) -> None:
    page.goto(f"{service.url}/dashboard")
    page.fill("#api-key", key)
    page.click("#signin button[type=submit]")
    expect(page.locator("h1", has_text="Batches")).to_be_visible()


def open_view(page: Page, hash_route: str) -> None:
    page.evaluate("route => { location.hash = route; }", hash_route)

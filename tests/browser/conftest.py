"""Browser-test fixtures: one textbatch for the layer, one headless Chromium per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from standins.upstream import StandinUpstream
from tests.browser.dashboard import CHROMIUM, start_dashboard_service, watched_page
from tests.support.service import RunningService


@pytest.fixture(scope="session")
def dashboard_service(
    redis_url: str, upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    data_dir = Path(tmp_path_factory.mktemp("dashboard"))
    service = start_dashboard_service(redis_url, upstream, upstream.api_key, data_dir)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Debian's Chromium: Playwright's own browser download is never used.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, dashboard_service: RunningService) -> Iterator[Page]:
    with watched_page(browser, dashboard_service) as opened:
        yield opened

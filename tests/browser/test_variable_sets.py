"""The page's own reading of variable sets, run in Chromium: CSV quoting, JSON shapes, checks."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.dashboard import sign_in
from tests.support.service import RunningService

pytestmark = pytest.mark.browser

READ = """async ([text]) => {
    const module = await import("/dashboard/assets/variables.js");
    return module.readVariableSets(text);
}"""
CHECK = """async ([set, placeholders, model]) => {
    const module = await import("/dashboard/assets/variables.js");
    return module.checkVariableSet(set, placeholders, model);
}"""


@pytest.fixture
def signed_in(page: Page, dashboard_service: RunningService) -> Page:
    sign_in(page, dashboard_service, dashboard_service.keys[0])
    return page


def read(page: Page, text: str) -> Any:
    return page.evaluate(READ, [text])


def test_csv_cells_keep_quoted_commas_quotes_and_line_breaks(signed_in: Page) -> None:
    text = 'name,text\r\nAda,"Hello, ""world"""\r\nBo,"two\nlines"\r\n\r\n'
    assert read(signed_in, text) == {
        "sets": [{"name": "Ada", "text": 'Hello, "world"'}, {"name": "Bo", "text": "two\nlines"}],
        "format": "csv",
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name,name\nA,B", "The CSV header names 'name' twice."),
        ("name,text\nAda", "CSV: row 1 has 1 cells; the header has 2."),
        ('name\n"Ada', "A quoted CSV field is not closed."),
        ('{"name": "Ada"}', "The JSON must be an array of objects, one per variable set."),
    ],
)
def test_variable_sets_that_cannot_be_read_say_why(signed_in: Page, text: str, error: str) -> None:
    assert read(signed_in, text) == {"error": error}


def test_each_set_is_checked_against_the_versions_placeholders(signed_in: Page) -> None:
    def check(variables: Any, model: str = "gpt-4o-mini") -> Any:
        return signed_in.evaluate(CHECK, [variables, ["name", "n"], model])

    assert check({"name": "Ada", "n": 3}) == {"faults": [], "notes": []}
    assert check({"name": "Ada", "n": 3, "extra": "x"}) == {
        "faults": [],
        "notes": ["not used by the prompt: extra"],
    }
    assert check({"n": None})["faults"] == [
        "missing variable 'name'",
        "variables.n is null; a variable must be a string or a number",
    ]
    assert check(["Ada"])["faults"] == ["must be an object of variables, not a list"]
    assert check({"name": "Ada", "n": 1}, "summarize")["faults"] == [
        "the summarize task reads its text from variables.text, which is missing"
    ]

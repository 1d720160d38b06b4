"""The README's "Use textbatch from Python" code runs as written against a real service."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.support.service import RunningService

ROOT = Path(__file__).resolve().parents[2]


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"### {title}")
    return readme[start : readme.index("\n### ", start + 4)]


def test_the_sdk_example_defines_its_key_and_polls_gently(
    offline_service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = re.search(r"```python\n(.*?)```", _section("The `openai` SDK"), re.DOTALL)
    assert code is not None
    monkeypatch.setenv("TEXTBATCH_URL", offline_service.url)
    monkeypatch.setenv("TEXTBATCH_API_KEY", offline_service.keys[0])
    monkeypatch.chdir(ROOT)
    naps: list[float] = []
    real_sleep = time.sleep

    def counted_sleep(seconds: float) -> None:
        naps.append(seconds)
        real_sleep(min(seconds, 0.2))  # the example's own pace, shortened for the test

    monkeypatch.setattr(time, "sleep", counted_sleep)
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    batch = namespace["batch"]
    assert batch.status == "completed"  # type: ignore[attr-defined]
    results = str(namespace["results"]).splitlines()
    assert len(results) == 6 and namespace["errors"] == ""
    # Every poll after the first waited a second first.
    assert naps and all(seconds >= 1 for seconds in naps)


def test_the_curl_example_picks_the_id_with_jq() -> None:
    shell = _section("curl, with `jq` picking the id")
    assert "KEY=$(textbatch key)" in shell
    assert "| jq -r .id)" in shell and "sleep 1" in shell

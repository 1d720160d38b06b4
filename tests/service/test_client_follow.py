"""The client CLI following and retrying batches: submit --wait via events, output --merged."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import line, to_jsonl
from tests.support.serve_process import Serve, start_serve, stop_serve


def _cli(serve: Serve, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=serve.client_env(),
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream() as standin:
        yield standin


def _summaries(path: Path, texts: dict[str, str]) -> Path:
    """A JSONL file of one summarize line per custom_id and text."""
    rows = [line(key, {"model": "summarize", "text": text}) for key, text in texts.items()]
    path.write_bytes(to_jsonl(rows))
    return path


def _serve(data_dir: Path, upstream: StandinUpstream) -> Serve:
    return start_serve(
        data_dir, llm_base_url=upstream.base_url, llm_model="standin", llm_max_attempts="1"
    )


@pytest.mark.timeout(120)
def test_submit_wait_follows_the_event_stream_instead_of_polling(
    upstream: StandinUpstream, tmp_path: Path
) -> None:
    texts = {f"w-{n}": f"Line {n} [[slow:0.4]] waits here." for n in range(4)}
    source = _summaries(tmp_path / "slow.jsonl", texts)
    serve = _serve(tmp_path / "data", upstream)
    try:
        done = _cli(serve, "submit", str(source), "--wait", "--output", str(tmp_path / "o.jsonl"))
    finally:
        printed = stop_serve(serve)
    assert done.returncode == 0, done.stderr.decode()
    found = re.search(r"Submitted (batch_[0-9a-f]{32})", done.stderr.decode())
    assert found is not None
    batch_id = found.group(1)
    assert "4 succeeded, 0 failed of 4" in done.stderr.decode()
    # The service's access log: one event stream, and no poll of the batch.
    assert f"GET /v1/batches/{batch_id}/events HTTP/1.1" in printed
    assert f"GET /v1/batches/{batch_id} HTTP/1.1" not in printed
    assert len((tmp_path / "o.jsonl").read_bytes().splitlines()) == 4


@pytest.mark.timeout(120)
def test_output_merged_writes_each_line_once_with_the_newest_result(
    upstream: StandinUpstream, tmp_path: Path
) -> None:
    texts = {
        "f-1": "The shop opened in May.",
        "f-2": "Refused once [[fail:400:1]] merged-cli.",
        "f-3": "Refused [[fail:400]] always merged-cli.",
    }
    source = _summaries(tmp_path / "flaky.jsonl", texts)
    serve = _serve(tmp_path / "data", upstream)
    try:
        submitted = _cli(serve, "submit", str(source), "--wait", "--output", "/dev/null")
        batch_id = re.search(rb"Submitted (batch_[0-9a-f]{32})", submitted.stderr)
        assert batch_id is not None, submitted.stderr.decode()
        original = batch_id.group(1).decode()
        retried = _cli(serve, "batches", "retry", original)
        assert retried.returncode == 0, retried.stderr.decode()
        retry_id = retried.stdout.decode().strip()
        with serve.client() as client:
            for _ in range(200):
                if client.get(f"/v1/batches/{retry_id}").json()["status"] == "completed":
                    break
                time.sleep(0.05)
            served = client.get(
                f"/v1/batches/{original}/output", params={"merged_with": retry_id}
            ).content
        merged = _cli(serve, "output", original, "--merged", "--output", str(tmp_path / "m"))
    finally:
        stop_serve(serve)
    assert merged.returncode == 0, merged.stderr.decode()
    written = (tmp_path / "m").read_bytes()
    assert written == served
    results = [orjson.loads(raw) for raw in written.splitlines()]
    assert [item["custom_id"] for item in results] == ["f-1", "f-2", "f-3"]
    assert results[1]["error"] is None
    assert results[2]["error"]["code"] == "upstream_rejected"

"""The client CLI end to end against a real ``textbatch serve``: results, exit codes, progress."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import line, to_jsonl
from tests.support.serve_process import Serve, serving

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _cli(serve: Serve, *args: str, **extra_env: str) -> subprocess.CompletedProcess[bytes]:
    env = serve.client_env() | extra_env
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, timeout=120
    )


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serving(tmp_path_factory.mktemp("offline")) as serve:
        yield serve


@pytest.fixture(scope="module")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream() as standin:
        yield standin


@pytest.fixture(scope="module")
def with_upstream(
    tmp_path_factory: pytest.TempPathFactory, upstream: StandinUpstream
) -> Iterator[Serve]:
    # One call at a time, so slow lines finish one after another and progress moves.
    with serving(
        tmp_path_factory.mktemp("upstream"),
        llm_base_url=upstream.base_url,
        llm_model="standin",
        llm_concurrency="1",
        llm_max_attempts="1",
    ) as serve:
        yield serve


@pytest.mark.timeout(120)
def test_submit_wait_writes_the_output_byte_for_byte(offline: Serve, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    errors = tmp_path / "errors.jsonl"
    done = _cli(
        offline,
        "submit",
        str(SAMPLES / "mixed.jsonl"),
        "--wait",
        "--output",
        str(out),
        "--errors",
        str(errors),
        "--metadata",
        "run=first-hour",
    )
    assert done.returncode == 0, done.stderr.decode()
    batch_id = re.search(rb"Submitted (batch_[0-9a-f]{32})", done.stderr)
    assert batch_id is not None, done.stderr.decode()
    with offline.client() as client:
        batch = client.get(f"/v1/batches/{batch_id.group(1).decode()}").json()
        served = client.get(f"/v1/batches/{batch['id']}/output").content
    assert batch["status"] == "completed"
    assert batch["metadata"] == {"run": "first-hour"}
    assert batch["request_counts"] == {
        "total": 6,
        "completed": 6,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert out.read_bytes() == served
    ids = [orjson.loads(row)["custom_id"] for row in served.splitlines()]
    sample_ids = [
        orjson.loads(row)["custom_id"]
        for row in (SAMPLES / "mixed.jsonl").read_bytes().splitlines()
    ]
    assert ids == sample_ids
    assert errors.read_bytes() == b""
    assert "6 succeeded, 0 failed of 6" in done.stderr.decode()


def test_submit_without_wait_prints_the_id_and_the_other_commands_find_it(offline: Serve) -> None:
    submitted = _cli(offline, "submit", str(SAMPLES / "summarize.jsonl"))
    assert submitted.returncode == 0, submitted.stderr.decode()
    batch_id = submitted.stdout.decode().strip()
    assert re.fullmatch(r"batch_[0-9a-f]{32}", batch_id)
    with offline.client() as client:
        for _ in range(100):
            if client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed":
                break
            time.sleep(0.1)
        served = client.get(f"/v1/batches/{batch_id}/output").content
    shown = _cli(offline, "batches", "show", batch_id)
    assert orjson.loads(shown.stdout)["id"] == batch_id
    listed = _cli(offline, "batches", "list")
    assert batch_id in listed.stdout.decode()
    output = _cli(offline, "batches", "output", batch_id)
    assert output.returncode == 0 and output.stdout == served
    assert _cli(offline, "key").stdout.decode().strip() == offline.key


def test_a_refused_file_exits_2_naming_the_line_and_field(offline: Serve, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(
        to_jsonl(
            [
                line("ok-1", {"model": "summarize", "text": "Fine."}),
                line("typo-2", {"model": "clasify", "text": "Refund me."}),
            ]
        )
    )
    done = _cli(offline, "submit", str(bad), "--wait")
    message = done.stderr.decode()
    assert done.returncode == 2
    assert "HTTP 400 invalid_batch" in message
    assert "line 2 body.model" in message and "did you mean 'classify'?" in message
    assert "Traceback" not in message


def test_a_wrong_key_and_a_stopped_service_are_clear_exits(offline: Serve) -> None:
    refused = _cli(offline, "batches", "list", TEXTBATCH_API_KEY="not-the-key")
    assert refused.returncode == 2
    assert "HTTP 401" in refused.stderr.decode()
    nowhere = _cli(offline, "batches", "list", TEXTBATCH_URL="http://127.0.0.1:9")
    assert nowhere.returncode == 3
    assert "cannot reach the service at http://127.0.0.1:9" in nowhere.stderr.decode()


@pytest.mark.timeout(120)
def test_some_failed_lines_exit_1_with_an_errors_file(with_upstream: Serve, tmp_path: Path) -> None:
    source = tmp_path / "half.jsonl"
    source.write_bytes(
        to_jsonl(
            [
                line("good-1", {"model": "summarize", "text": "The shop opened in May."}),
                line("bad-2", {"model": "summarize", "text": "Refused [[fail:400]] here."}),
            ]
        )
    )
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    done = _cli(
        with_upstream,
        "submit",
        str(source),
        "--wait",
        "--output",
        str(out),
        "--errors",
        str(errors),
    )
    assert done.returncode == 1, done.stderr.decode()
    assert "1 succeeded, 1 failed of 2" in done.stderr.decode()
    rows = [orjson.loads(row) for row in out.read_bytes().splitlines()]
    assert [row["custom_id"] for row in rows] == ["good-1", "bad-2"]
    failed = [orjson.loads(row) for row in errors.read_bytes().splitlines()]
    assert [row["custom_id"] for row in failed] == ["bad-2"]
    assert failed[0]["error"]["code"] == "upstream_rejected"


def _read_all(fd: int, process: subprocess.Popen[bytes], timeout: float) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.timeout(120)
def test_progress_is_drawn_live_in_a_terminal(with_upstream: Serve, tmp_path: Path) -> None:
    source = tmp_path / "slow.jsonl"
    rows = [
        line(f"slow-{n}", {"model": "summarize", "text": f"Line {n} [[slow:0.8]] of four."})
        for n in range(1, 5)
    ]
    source.write_bytes(to_jsonl(rows))
    out = tmp_path / "out.jsonl"
    controller, terminal = pty.openpty()
    env = with_upstream.client_env() | {"TERM": "xterm-256color", "COLUMNS": "160"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "submit",
            str(source),
            "--wait",
            "--output",
            str(out),
        ],
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    try:
        screen = _read_all(controller, process, timeout=90).decode(errors="replace")
        assert process.wait(timeout=30) == 0
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    # Redrawn in place (cursor moves), not printed once at the end.
    assert "\x1b[" in screen
    frames = re.findall(r"(\d) done / (\d) failed / 4 total", screen)
    done_counts = {int(done) for done, _ in frames}
    assert 4 in done_counts and done_counts & {1, 2, 3}, frames
    # While running, the bar shows the server's rate.
    assert re.search(r"\d+\.\d lines/s", screen), screen[-2000:]
    assert len(out.read_bytes().splitlines()) == 4


def test_files_and_prompts_commands_round_trip(offline: Serve, tmp_path: Path) -> None:
    source = SAMPLES / "classify.jsonl"
    uploaded = _cli(offline, "files", "upload", str(source))
    assert uploaded.returncode == 0, uploaded.stderr.decode()
    file_id = uploaded.stdout.decode().strip()
    assert re.fullmatch(r"file-[0-9a-f]{32}", file_id)
    assert file_id in _cli(offline, "files", "list").stdout.decode()
    assert orjson.loads(_cli(offline, "files", "show", file_id).stdout)["bytes"] == len(
        source.read_bytes()
    )
    assert _cli(offline, "files", "content", file_id).stdout == source.read_bytes()
    assert _cli(offline, "files", "delete", file_id).returncode == 0
    gone = _cli(offline, "files", "show", file_id)
    assert gone.returncode == 2 and "HTTP 404" in gone.stderr.decode()

    prompt = tmp_path / "prompt.json"
    prompt.write_bytes(
        orjson.dumps(
            {"slug": "greet", "messages": [{"role": "user", "content": "Say hi to {{ name }}."}]}
        )
    )
    assert _cli(offline, "prompts", "create", str(prompt)).stdout.decode().strip() == "greet"
    assert "greet  published v1" in _cli(offline, "prompts", "list").stdout.decode()
    shown = orjson.loads(_cli(offline, "prompts", "show", "greet").stdout)
    assert shown["slug"] == "greet"
    assert _cli(offline, "prompts", "delete", "greet").returncode == 0
    assert "greet" not in _cli(offline, "prompts", "list").stdout.decode()

"""``textbatch serve`` on the embedded defaults, as a new user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import free_port, wait_until_answering


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}
    env.update(TEXTBATCH_DATA_DIR=str(data_dir), TEXTBATCH_PORT=str(port))
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _interrupt(process: subprocess.Popen[str]) -> str:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=40)
    return output


def _children_alive(pid: int) -> bool:
    found = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True)
    return bool(found.stdout.strip())


@pytest.mark.timeout(180)
def test_serve_generates_a_key_persists_batches_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    first = _serve(tmp_path, port)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/readyz")
        key = (tmp_path / "api-key").read_text().strip()
        assert key
        assert httpx.get(f"http://127.0.0.1:{port}/v1/batches/x").status_code == 401
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": key}
        ) as client:
            body = {"model": "summarize", "text": "The plant opened in May. It employs 40 people."}
            batch_id = submit(client, [line("persist-1", body)]).json()["id"]
            wait_finished(client, batch_id)
            before = output_lines(client, batch_id)
    finally:
        printed = _interrupt(first)
    assert key in printed, "the generated key is printed on first start"
    assert first.returncode == 0
    assert not _children_alive(first.pid), "workers and embedded Valkey stop with serve"

    second = _serve(tmp_path, port)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/readyz")
        assert (tmp_path / "api-key").read_text().strip() == key
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": key}
        ) as client:
            assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
            assert output_lines(client, batch_id) == before
    finally:
        _interrupt(second)


def test_api_answers_503_when_redis_is_unreachable(tmp_path: Path) -> None:
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}
    env.update(
        TEXTBATCH_DATA_DIR=str(tmp_path),
        TEXTBATCH_PORT=str(port),
        TEXTBATCH_REDIS_URL=dead_redis,
        TEXTBATCH_API_KEYS="k-503",
    )
    api = subprocess.Popen([sys.executable, "-m", "service.cli", "api"], env=env)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/healthz", api)
        headers = {"x-api-key": "k-503"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            body = {"model": "summarize", "text": "Nothing can be queued."}
            response = submit(client, [line("r-1", body)])
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "batch_router_unavailable"
            status = client.get(f"/v1/batches/batch_{'0' * 32}")
            assert status.status_code == 503
            assert status.json()["error"]["code"] == "batch_router_unavailable"
            ready = client.get("/readyz")
            assert ready.status_code == 503
    finally:
        api.terminate()
        api.wait(timeout=20)

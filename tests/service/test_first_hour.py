"""The first hour with textbatch (issue 14): each finding a newcomer hit, checked as met."""

from __future__ import annotations

import logging
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from service.api.batch_progress import batch_progress
from service.embedded_access import PASSWORD_FILE, PORT_FILE
from service.settings import default_data_dir
from service.store.records import BatchRecord
from standins.upstream import StandinUpstream
from tests.support.batches import line, submit, wait_finished
from tests.support.serve_process import clean_env, start_serve, stop_serve
from tests.support.service import RunningService, free_port, start_service, wait_until_answering

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _textbatch(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = clean_env() | {f"TEXTBATCH_{name.upper()}": value for name, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- 8. settings mistakes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"port": "abc"}, "TEXTBATCH_PORT: Input should be a valid integer"),
        ({"upstreams": "{not json"}, "TEXTBATCH_UPSTREAMS: not valid JSON"),
        (
            {"price_table": "/nonexistent/prices.json"},
            "TEXTBATCH_PRICE_TABLE: price table /nonexistent/prices.json: cannot read it",
        ),
        ({"embedded_redis_port": "70000"}, "TEXTBATCH_EMBEDDED_REDIS_PORT: Input should be less"),
    ],
    ids=["port", "upstreams-json", "price-table", "embedded-port"],
)
def test_a_settings_mistake_is_one_line_and_exit_2(
    tmp_path: Path, settings: dict[str, str], expected: str
) -> None:
    done = _textbatch("serve", data_dir=str(tmp_path), **settings)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("textbatch: " + expected), lines[0]
    # Nothing was started: no key, no Valkey data.
    assert not (tmp_path / "api-key").exists() and not (tmp_path / "valkey").exists()


def test_a_secret_setting_is_never_echoed_in_its_error() -> None:
    done = _textbatch("worker", upstreams='{"acme": {"api_key": "sk-very-secret"}}')
    assert done.returncode == 2
    assert "TEXTBATCH_UPSTREAMS['acme']['base_url']: Field required" in done.stderr
    assert "sk-very-secret" not in done.stderr


# -- 12. --version and --help ---------------------------------------------------------


def test_version_and_help_list_every_command() -> None:
    version = _textbatch("--version")
    assert version.returncode == 0 and version.stdout.strip() == "textbatch 0.1.0"
    shown = _textbatch("--help")
    assert shown.returncode == 0
    commands = re.findall(r"^  (\w+)\s+\[(server|client)\]", shown.stdout, re.MULTILINE)
    assert dict(commands) == {
        "api": "server",
        "serve": "server",
        "worker": "server",
        "submit": "client",
        "output": "client",
        "batches": "client",
        "files": "client",
        "prompts": "client",
        "key": "client",
    }


# -- 10. XDG_DATA_HOME ---------------------------------------------------------------


def test_the_data_directory_follows_xdg_data_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "textbatch"
    # A relative value is invalid by the XDG rules, so the usual place is used.
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")
    assert default_data_dir() == Path.home() / ".local" / "share" / "textbatch"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local" / "share" / "textbatch"


# -- 2, 7, 9, 10: a whole first session, then a restart ---------------------------------


def _ping_without_password(port: int) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64)


@pytest.mark.timeout(180)
def test_a_first_session_and_a_restart(tmp_path: Path) -> None:
    rows = [line(f"s-{n}", {"model": "summarize", "text": f"Crate {n} left."}) for n in range(40)]
    first = start_serve(tmp_path)
    try:
        key = first.key
        port = int((tmp_path / PORT_FILE).read_text())
        password = (tmp_path / PASSWORD_FILE).read_text().strip()
        # 9: loopback only, a password kept 0600, nobody gets in without it
        assert stat.S_IMODE((tmp_path / PASSWORD_FILE).stat().st_mode) == 0o600
        config = (tmp_path / "valkey" / "valkey.conf").read_text()
        assert "bind 127.0.0.1\n" in config and f"requirepass {password}\n" in config
        assert stat.S_IMODE((tmp_path / "valkey" / "valkey.conf").stat().st_mode) == 0o600
        assert _ping_without_password(port).startswith(b"-NOAUTH")
        assert redis.Redis(port=port, password=password).ping() is True
        with first.client() as client:
            done_id = submit(
                client,
                [
                    line(
                        "one",
                        {
                            "model": "classify",
                            "text": "Refund!",
                            "labels": [{"name": "refund", "rubric": "Money back?"}],
                        },
                    )
                ],
            ).json()["id"]
            wait_finished(client, done_id)
            batch_id = submit(client, rows).json()["id"]
    finally:
        # 2: Ctrl-C (to the whole group) right after a submission
        printed = stop_serve(first)
    assert first.process.returncode == 0
    # 10: the key is printed when generated
    assert key in printed
    # 7: start-up says the backend and where the docs are; a batch's end is logged once
    assert "LLM backend: offline engine (no TEXTBATCH_LLM_BASE_URL set)" in printed
    assert f"API docs at http://127.0.0.1:{first.port}/docs" in printed
    assert f"Dashboard at http://127.0.0.1:{first.port}/dashboard" in printed
    assert printed.count(f"batch {done_id} completed: 1 succeeded, 0 failed of 1 lines") == 1
    # 9: the password is in no output
    assert password not in printed
    # 2: the stop looks as clean as it is
    for alarming in ("Traceback", "CRITICAL", " ERROR "):
        assert alarming not in printed, printed

    second = start_serve(tmp_path)
    try:
        # 9: the same port; 10: the same key, not printed again but said where it is
        assert int((tmp_path / PORT_FILE).read_text()) == port
        assert redis.Redis(port=port, password=password).ping() is True
        with second.client() as client:
            assert wait_finished(client, batch_id)["request_counts"]["completed"] == 40
    finally:
        printed_again = stop_serve(second)
    assert key not in printed_again
    assert f"Using the API key kept in {tmp_path / 'api-key'}" in printed_again


@pytest.mark.timeout(60)
def test_ctrl_c_as_soon_as_serve_answers_prints_no_traceback(tmp_path: Path) -> None:
    # The worker may still be importing when the API first answers.
    printed = stop_serve(start_serve(tmp_path))
    assert "Traceback" not in printed and "KeyboardInterrupt" not in printed, printed


@pytest.mark.timeout(120)
def test_api_names_the_password_file_in_the_worker_url_it_prints(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env() | {"TEXTBATCH_DATA_DIR": str(tmp_path), "TEXTBATCH_PORT": str(port)}
    api = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "api"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/readyz", api, timeout=60)
    finally:
        os.killpg(api.pid, signal.SIGINT)
        printed, _ = api.communicate(timeout=30)
    password = (tmp_path / PASSWORD_FILE).read_text().strip()
    assert password not in printed
    shown = re.search(r'start workers with TEXTBATCH_REDIS_URL="([^"]+)"', printed)
    assert shown is not None, printed
    # The shell form a user copies gives the real URL.
    url = subprocess.run(["sh", "-c", f'echo "{shown.group(1)}"'], capture_output=True, text=True)
    assert (
        url.stdout.strip()
        == f"redis://:{password}@127.0.0.1:{(tmp_path / PORT_FILE).read_text().strip()}"
    )


# -- 5. model-name mistakes ----------------------------------------------------------


def _faults(service: RunningService, body: dict[str, object]) -> list[dict[str, object]]:
    with service.client() as client:
        answer = submit(client, [line("m-1", body)])
    assert answer.status_code == 400
    lines: list[dict[str, object]] = answer.json()["error"]["lines"]
    return lines


def test_a_task_typo_says_what_was_meant(llm_service: RunningService) -> None:
    (fault,) = _faults(llm_service, {"model": "clasify", "text": "Refund me."})
    assert fault["param"] == "body.model"
    assert "did you mean 'classify'?" in str(fault["message"])
    assert "needs 'messages'" in str(fault["message"])


def test_a_pass_through_model_without_messages_says_it_is_passed_through(
    llm_service: RunningService,
) -> None:
    (fault,) = _faults(llm_service, {"model": "gpt-4o-mini", "text": "Hi"})
    assert fault["param"] == "body.messages"
    assert fault["message"] == (
        "messages is required for /v1/chat/completions: 'gpt-4o-mini' is not a task "
        "('extract', 'summarize', 'classify'), so the line is passed through to an upstream "
        "as it stands."
    )


def test_an_unknown_model_without_an_upstream_names_the_tasks(
    offline_service: RunningService,
) -> None:
    (fault,) = _faults(offline_service, {"model": "translate", "text": "Hola"})
    assert fault["message"] == (
        "model must be one of 'extract', 'summarize', 'classify'; got 'translate'. Other "
        "models are passed through to an upstream, and none is configured (set "
        "TEXTBATCH_LLM_BASE_URL)."
    )


# -- 7. an upstream that does not answer -----------------------------------------------


def test_readyz_is_not_ready_when_the_upstream_does_not_answer(
    redis_url: str, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    service = start_service(redis_url, tmp_path, workers=0, llm_base_url=dead)
    try:
        ready = httpx.get(f"{service.url}/readyz")
    finally:
        service.stop()
    assert ready.status_code == 503
    assert ready.json()["upstream"] == "unreachable"
    assert ready.json()["redis"] == "ok"


def test_readyz_reports_an_answering_upstream(llm_service: RunningService) -> None:
    ready = httpx.get(f"{llm_service.url}/readyz").json()
    assert (ready["status"], ready["upstream"]) == ("ready", "ok")


def test_retries_are_not_repeated_at_info(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from service.errors import LLMError
    from service.llm.base import ChatRequest
    from service.llm.openai_compat import OpenAICompatibleBackend
    from service.llm.retry import RetryPolicy

    async def call_twice(base_url: str) -> None:
        backend = OpenAICompatibleBackend(
            base_url=base_url,
            api_key=None,
            model="standin-model",
            retry=RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.02),
        )
        try:
            for _ in range(2):
                with pytest.raises(LLMError, match="503"):
                    await backend.complete(
                        ChatRequest(messages=[{"role": "user", "content": "x [[fail:503]]"}])
                    )
        finally:
            await backend.aclose()

    with StandinUpstream() as standin, caplog.at_level(logging.DEBUG, "service.llm.openai_compat"):
        asyncio.run(call_twice(standin.base_url))
    records = [r for r in caplog.records if r.name == "service.llm.openai_compat"]
    at_info_or_above = [r for r in records if r.levelno >= logging.INFO]
    # 2 calls x 3 retries, each at DEBUG; the failing upstream said once at WARNING.
    retries = [r for r in records if "retrying in" in r.getMessage()]
    assert len(retries) == 6 and {r.levelno for r in retries} == {logging.DEBUG}
    assert [r.levelname for r in at_info_or_above] == ["WARNING"]
    assert "is failing (upstream_error, HTTP 503)" in at_info_or_above[0].getMessage()


# -- Add: progress on the batch object ---------------------------------------------------


def _record(status: str, started: int, total: int, completed: int, failed: int) -> BatchRecord:
    raw = {
        "id": "batch_x",
        "owner": "o",
        "status": status,
        "created_at": str(started),
        "in_progress_at": str(started),
        "total": str(total),
        "completed": str(completed),
        "failed": str(failed),
    }
    return BatchRecord.from_hash({k.encode(): v.encode() for k, v in raw.items()})


def test_progress_gives_a_rate_and_an_eta_while_running() -> None:
    running = batch_progress(_record("in_progress", 1000, 100, 15, 5), now=1010)
    assert running is not None
    assert running.lines_per_second == 2.0
    assert running.eta_at == 1050  # 80 lines left at 2 a second
    assert batch_progress(_record("in_progress", 1000, 100, 0, 0), now=1010) is None
    assert batch_progress(_record("completed", 1000, 100, 100, 0), now=1010) is None


def test_a_running_batch_shows_its_progress(redis_url: str, tmp_path: Path) -> None:
    with StandinUpstream() as standin:
        service = start_service(
            redis_url, tmp_path, llm_base_url=standin.base_url, llm_concurrency="1"
        )
        try:
            rows = [
                line(f"p-{n}", {"model": "summarize", "text": f"Line {n} [[slow:0.4]]."})
                for n in range(6)
            ]
            with service.client() as client:
                batch_id = submit(client, rows).json()["id"]
                seen = None
                deadline = time.monotonic() + 60
                while seen is None and time.monotonic() < deadline:
                    batch = client.get(f"/v1/batches/{batch_id}").json()
                    if batch["status"] != "in_progress":
                        break
                    seen = batch["progress"]
                    time.sleep(0.1)
                final = wait_finished(client, batch_id)
        finally:
            service.stop()
    assert seen is not None and seen["lines_per_second"] > 0
    assert seen["eta_at"] >= int(time.time()) - 60
    assert final["status"] == "completed" and final["progress"] is None


# -- 11. offline cost ------------------------------------------------------------------


def test_offline_lines_cost_nothing_and_unpriced_models_cost_null(
    offline_service: RunningService, llm_service: RunningService
) -> None:
    body = {"model": "summarize", "text": "The plant opened in May."}
    with offline_service.client() as client:
        batch = wait_finished(client, submit(client, [line("c-1", body)]).json()["id"])
    assert batch["usage"]["total_cost"] == 0.0 and batch["usage"]["unpriced_models"] == []
    unpriced = {"model": "acme/not-priced", "messages": [{"role": "user", "content": "hi"}]}
    with llm_service.client() as client:
        batch = wait_finished(client, submit(client, [line("c-2", unpriced)]).json()["id"])
    assert batch["usage"]["total_cost"] is None
    assert batch["usage"]["unpriced_models"] == ["acme/not-priced"]


# -- 6. the README's walk-through output comes from the sample ----------------------------


def test_the_readme_sample_output_is_what_the_sample_gives(offline_service: RunningService) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = re.search(
        r'^\{"id":"batch_req_…","custom_id":"mixed-invoice-001".*$', readme, re.MULTILINE
    )
    assert shown is not None
    shown_content = orjson.loads(
        re.search(r'"content":"((?:[^"\\]|\\.)*)"', shown.group(0))
        .group(1)
        .encode()
        .decode("unicode_escape")  # type: ignore[union-attr]
    )
    first = orjson.loads((SAMPLES / "mixed.jsonl").read_bytes().splitlines()[0])
    with offline_service.client() as client:
        batch = wait_finished(client, submit(client, [first]).json()["id"])
        (result,) = [
            orjson.loads(row)
            for row in client.get(f"/v1/batches/{batch['id']}/output").content.splitlines()
        ]
    actual = orjson.loads(result["response"]["body"]["choices"][0]["message"]["content"])
    assert shown_content == actual
    text = first["body"]["text"]
    for entity in shown_content["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]


def test_the_start_up_backend_line_never_shows_credentials() -> None:
    from service.llm.factory import describe_backend
    from service.settings import Settings

    settings = Settings(
        llm_base_url="https://user:pa55word@llm.example.com:8443/v1?key=secret",
        llm_model="qwen3:4b",
    )
    assert describe_backend(settings) == "https://llm.example.com:8443/v1, model qwen3:4b"

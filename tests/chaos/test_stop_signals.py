"""SIGTERM and Ctrl-C stop ``serve`` and ``api`` with all children; one service per data dir."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import line, output_lines, submit, wait_finished
from tests.support.service import free_port, wait_until_answering

# The bound for a Ctrl-C to take the whole service down.
STOP_BOUND_SECONDS = 5


@dataclass
class Started:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        wait_until_answering(f"{self.url}/readyz", self.process, timeout=60)

    def client(self, data_dir: Path) -> httpx.Client:
        key = (data_dir / "api-key").read_text().strip()
        return httpx.Client(base_url=self.url, headers={"x-api-key": key}, timeout=30)

    def end(self) -> None:
        """Leave nothing behind whatever the test did."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.communicate()


def _start(command: str, data_dir: Path, **settings: str) -> Started:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}
    env.update(TEXTBATCH_DATA_DIR=str(data_dir), TEXTBATCH_PORT=str(port))
    env.update({f"TEXTBATCH_{name.upper()}": value for name, value in settings.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal's foreground job has
    )
    return Started(process, port)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(item) for item in found.stdout.split()]


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(row for row in status.splitlines() if row.startswith("State:"))
    return state.split()[1] != "Z"


def _valkeys_on(data_dir: Path) -> list[int]:
    """Processes working in the data directory's Valkey folder (Valkey renames its title)."""
    folder = str(data_dir / "valkey")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            working_in = os.readlink(entry / "cwd")
        except OSError:
            continue
        if working_in == folder and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("command", "signum"),
    [
        ("serve", signal.SIGTERM),
        ("api", signal.SIGTERM),
        # A closed terminal: without a handler serve would die alone, its Valkey left.
        ("serve", signal.SIGHUP),
    ],
    ids=["serve-SIGTERM", "api-SIGTERM", "serve-SIGHUP"],
)
def test_a_stop_signal_stops_every_child(
    tmp_path: Path, command: str, signum: signal.Signals
) -> None:
    # Given a running service with its embedded Valkey (and, for serve, a worker)
    started = _start(command, tmp_path)
    try:
        started.wait_ready()
        children = _children(started.process.pid)
        valkeys = _valkeys_on(tmp_path)
        assert len(valkeys) == 1 and valkeys[0] in children
        assert len(children) == (2 if command == "serve" else 1)

        # When it gets SIGTERM, as systemd, docker stop and supervisors send it
        started.process.send_signal(signum)
        output, _ = started.process.communicate(timeout=30)
    finally:
        started.end()

    # Then it ends cleanly and nothing it started is left running
    assert started.process.returncode == 0, output
    assert "Traceback" not in output, output
    assert [pid for pid in children if _alive(pid)] == []
    assert _valkeys_on(tmp_path) == []


@pytest.mark.timeout(120)
def test_second_serve_on_a_locked_directory_starts_nothing(tmp_path: Path) -> None:
    first = _start("serve", tmp_path)
    try:
        first.wait_ready()
        valkeys_before = _valkeys_on(tmp_path)

        # When a second serve is started on the same data directory
        second = _start("serve", tmp_path)
        output, _ = second.process.communicate(timeout=20)

        # Then it fails at once, naming the holder, and starts nothing
        assert second.process.returncode != 0
        assert f"PID {first.process.pid}" in output, output
        assert str(tmp_path) in output, output
        assert "Traceback" not in output, output
        assert _valkeys_on(tmp_path) == valkeys_before
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{second.url}/healthz", timeout=1)
        # And the first one still serves
        assert httpx.get(f"{first.url}/readyz").status_code == 200
    finally:
        first.end()


@pytest.mark.timeout(120)
def test_a_killed_serve_takes_its_worker_and_valkey_with_it(tmp_path: Path) -> None:
    """kill -9 of serve runs no cleanup: its children must still end, and a restart work."""
    first = _start("serve", tmp_path)
    try:
        first.wait_ready()
        children = _children(first.process.pid)
        (valkey,) = _valkeys_on(tmp_path)
        assert children
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            _valkeys_on(tmp_path) or any(_alive(pid) for pid in children)
        ):
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in children), "the worker outlived serve"
        assert not _alive(valkey), "Valkey outlived serve"
        # The lock went with them: the same data directory starts again.
        second = _start("serve", tmp_path)
        try:
            second.wait_ready()
        finally:
            second.process.send_signal(signal.SIGTERM)
            second.process.communicate(timeout=20)
        assert second.process.returncode == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.process.pid, signal.SIGKILL)
        for pid in _valkeys_on(tmp_path):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(240)
def test_ctrl_c_mid_batch_stops_quickly_and_loses_nothing(tmp_path: Path) -> None:
    lines = [
        line(f"c-{n:03d}", {"model": "summarize", "text": f"Crate {n} left."}) for n in range(300)
    ]
    with StandinUpstream(latency=0.2) as upstream:
        settings = {"llm_base_url": upstream.base_url, "llm_concurrency": "8"}
        first = _start("serve", tmp_path, **settings)
        try:
            first.wait_ready()
            with first.client(tmp_path) as client:
                batch_id = submit(client, lines).json()["id"]
                while len(upstream.calls) < 40:
                    time.sleep(0.01)
            # When Ctrl-C reaches the whole foreground process group mid-batch
            os.killpg(first.process.pid, signal.SIGINT)
            interrupted_at = time.monotonic()
            # Then everything stops within the bound, without a traceback
            output, _ = first.process.communicate(timeout=STOP_BOUND_SECONDS)
            print(
                f"\nCtrl-C mid-batch: serve ended {time.monotonic() - interrupted_at:.2f} s later"
            )
        finally:
            first.end()
        assert first.process.returncode == 0, output
        assert "Traceback" not in output, output
        assert _valkeys_on(tmp_path) == []

        # And after a restart the batch completes with every line, none failed
        second = _start("serve", tmp_path, **settings)
        try:
            second.wait_ready()
            with second.client(tmp_path) as client:
                batch = wait_finished(client, batch_id, timeout=150)
                output_items = output_lines(client, batch_id)
        finally:
            second.end()
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {
        "total": 300,
        "completed": 300,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert sorted(item["custom_id"] for item in output_items) == [
        item["custom_id"] for item in lines
    ]
    assert all(item["error"] is None for item in output_items)

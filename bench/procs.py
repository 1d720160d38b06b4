"""Child processes the benchmark owns: starting, waiting for readiness, stopping, memory.

Memory is read from ``/proc/<pid>/status``: ``VmRSS`` now and ``VmHWM`` the
peak. The peak can be reset by writing ``5`` to ``/proc/<pid>/clear_refs``, so
each measurement gets its own peak; where that is refused, a sampling thread
catches the peak instead (both run, the larger wins).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

MIB = 1024 * 1024
SAMPLE_SECONDS = 0.005


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_python(
    module_args: list[str], env: dict[str, str], log: Path, prefix: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m …`` in its own process group, output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", *module_args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_http_ok(
    url: str, process: subprocess.Popen[bytes], timeout: float = 30, log: Path | None = None
) -> None:
    """Wait until ``url`` answers 200, failing fast (with its log's end) if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            said = log.read_text(errors="replace")[-800:] if log and log.exists() else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}: {said}")
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM each, then wait; kill what is still there after ``timeout``."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> bool:
    """Start a new ``VmHWM`` peak for ``pid``; False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class RssWatch:
    """The RSS of one process across a block: before, after, and the peak in between."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0.0
        self.after = 0.0
        self.peak = 0.0
        self._hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> RssWatch:
        self.before = self.peak = rss_mib(self.pid)
        self._hwm_reset = reset_peak(self.pid)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_mib(self.pid)
        if self._hwm_reset:
            self.peak = max(self.peak, peak_rss_mib(self.pid))

    @property
    def growth(self) -> float:
        """Peak over the starting RSS, in MiB."""
        return max(0.0, self.peak - self.before)

    def figures(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_rss_before_mib": round(self.before, 1),
            f"{prefix}_rss_peak_mib": round(self.peak, 1),
            f"{prefix}_rss_growth_mib": round(self.growth, 1),
        }


def cpu_ticks(pid: int) -> int:
    """User plus system CPU ticks ``pid`` has used."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wait_until_quiet(pid: int, timeout: float = 20, quiet_ticks: int = 3) -> None:
    """Wait until ``pid`` uses almost no CPU over half a second (it has finished booting)."""
    deadline = time.monotonic() + timeout
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_ticks(pid)
        if now - last <= quiet_ticks:
            return
        last = now


def base_env() -> dict[str, str]:
    """This environment without any ``TEXTBATCH_*`` setting of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}

"""Runs textbatch as a user would: ``textbatch api`` and ``textbatch worker`` processes."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def wait_until_answering(
    url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 30
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningService:
    """An API process and its workers, sharing one Redis."""

    env: dict[str, str]
    port: int
    keys: list[str]
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # When set, each process's stdout and stderr go to a file here.
    log_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"x-api-key": key or self.keys[0]}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def _output(self, name: str) -> Any:
        if self.log_dir is None:
            return None
        return open(self.log_dir / f"{name}.log", "ab")

    def logs(self) -> str:
        """Everything the processes printed, when started with a log directory."""
        assert self.log_dir is not None
        return "".join(
            path.read_text(errors="replace") for path in sorted(self.log_dir.glob("*.log"))
        )

    def start_api(self) -> None:
        output = self._output("api")
        self.api = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "api"],
            env=self.env,
            stdout=output or subprocess.DEVNULL,
            stderr=output,
        )
        wait_until_answering(f"{self.url}/healthz", self.api)

    def start_worker(self) -> subprocess.Popen[bytes]:
        output = self._output(f"worker-{len(self.workers)}")
        worker = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"],
            env=self.env,
            stdout=output,
            stderr=output,
        )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for process in [*self.workers, self.api]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.api]:
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def service_env(
    redis_url: str, data_dir: Path, **settings: str
) -> tuple[dict[str, str], list[str]]:
    """Environment for a service with two fresh keys and its own queue."""
    keys = [f"test-key-{secrets.token_hex(8)}", f"test-key-{secrets.token_hex(8)}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}
    env.update(
        TEXTBATCH_REDIS_URL=redis_url,
        TEXTBATCH_API_KEYS=",".join(keys),
        TEXTBATCH_DATA_DIR=str(data_dir),
        TEXTBATCH_QUEUE_NAME=f"test-{secrets.token_hex(4)}",
        TEXTBATCH_LOG_LEVEL="warning",
    )
    env.update({f"TEXTBATCH_{name.upper()}": value for name, value in settings.items()})
    return env, keys


def start_service(
    redis_url: str,
    data_dir: Path,
    workers: int = 1,
    log_dir: Path | None = None,
    **settings: str,
) -> RunningService:
    env, keys = service_env(redis_url, data_dir, **settings)
    port = free_port()
    env["TEXTBATCH_PORT"] = str(port)
    service = RunningService(env=env, port=port, keys=keys, log_dir=log_dir)
    try:
        service.start_api()
        for _ in range(workers):
            service.start_worker()
    except BaseException:
        service.stop()
        raise
    return service

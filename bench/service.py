"""The service under test, run as a user runs it: ``textbatch api`` and ``textbatch worker``.

Each scenario starts its own service with the settings it needs (recorded in
the results) and stops it at the end; all of them share the benchmark's Redis
database, flushed between scenarios.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs

API_KEY_BYTES = 16
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "expired"})
# Poll slowly while a batch is far from done, fast near the end: the end time is
# what is measured, and polling is load on the API the batch does not need.
SLOW_POLL_SECONDS = 0.25
FAST_POLL_SECONDS = 0.01
FAST_POLL_FROM = 0.9


@dataclass
class ServiceSettings:
    """The ``TEXTBATCH_*`` knobs a scenario sets; the rest keep their defaults."""

    llm_concurrency: int = 128
    chunk_size: int = 64
    worker_threads: int = 8
    workers: int = 1
    # Calls in flight across all processes; None: every worker's concurrency, so the
    # shared limit is full exactly when each worker is (realtime calls then go first).
    upstream_capacity: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        if self.upstream_capacity is not None:
            return self.upstream_capacity
        return max(1, self.workers) * self.llm_concurrency

    def as_record(self) -> dict[str, Any]:
        return {
            "llm_concurrency": self.llm_concurrency,
            "upstream_capacity": self.capacity,
            "chunk_size": self.chunk_size,
            "worker_threads": self.worker_threads,
            "workers": self.workers,
            **{name.lower(): value for name, value in self.extra.items()},
        }


class Service:
    """An API process and its workers, pointed at one upstream and one Redis."""

    def __init__(
        self, redis_url: str, upstream_url: str, work_dir: Path, settings: ServiceSettings
    ) -> None:
        self.settings = settings
        self.key = f"bench-{secrets.token_hex(API_KEY_BYTES)}"
        self.port = procs.free_port()
        self.work_dir = work_dir
        data_dir = work_dir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = procs.base_env()
        self.env.update(
            TEXTBATCH_REDIS_URL=redis_url,
            TEXTBATCH_API_KEYS=self.key,
            TEXTBATCH_DATA_DIR=str(data_dir),
            TEXTBATCH_LLM_BASE_URL=upstream_url,
            TEXTBATCH_LLM_CONCURRENCY=str(settings.llm_concurrency),
            TEXTBATCH_UPSTREAM_CAPACITY=str(settings.capacity),
            TEXTBATCH_CHUNK_SIZE=str(settings.chunk_size),
            TEXTBATCH_WORKER_THREADS=str(settings.worker_threads),
            TEXTBATCH_LLM_ADAPTIVE_CONCURRENCY="false",
            TEXTBATCH_LOG_LEVEL="warning",
            TEXTBATCH_PORT=str(self.port),
            TEXTBATCH_QUEUE_NAME=f"bench-{secrets.token_hex(4)}",
            # Room for the 200 MB upload with its multipart framing.
            TEXTBATCH_MAX_BODY_BYTES=str(300 * procs.MIB),
        )
        self.env.update({f"TEXTBATCH_{k.upper()}": v for k, v in settings.extra.items()})
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 300) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"x-api-key": self.key}, timeout=timeout)

    def start(self, *, workers: int | None = None) -> Service:
        """Start the API and ``workers`` workers (default: the settings' count)."""
        self.api = procs.start_python(["service.cli", "api"], self.env, self.work_dir / "api.log")
        for _ in range(self.settings.workers if workers is None else workers):
            self.start_worker()
        procs.wait_http_ok(f"{self.url}/healthz", self.api, log=self.work_dir / "api.log")
        return self

    def start_worker(self, prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
        """One more worker; ``prefix`` runs it under another command (a profiler)."""
        log = self.work_dir / f"worker-{len(self.workers)}.log"
        worker = procs.start_python(["service.cli", "worker"], self.env, log, prefix=prefix)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        procs.stop([*self.workers, *([self.api] if self.api else [])])

    def worker_errors(self, top: int = 3) -> dict[str, int]:
        """The exceptions the workers logged, most frequent first (evidence for failed lines)."""
        found: Counter[str] = Counter()
        for log in sorted(self.work_dir.glob("worker-*.log")):
            for line in log.read_text(errors="replace").splitlines():
                # A traceback ends with an unindented ``module.Error: message`` line.
                head, _, message = line.partition(": ")
                if message and not line.startswith(" ") and head.endswith(("Error", "Exception")):
                    found[line[:200]] += 1
        return dict(found.most_common(top))

    @property
    def api_pid(self) -> int:
        assert self.api is not None
        return self.api.pid

    def submit_jsonl(self, client: httpx.Client, path: Path) -> dict[str, Any]:
        """``POST /v1/batches`` with the file as a streamed JSONL body."""
        with path.open("rb") as body:
            response = client.post(
                "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
            )
        return _ok(response)

    def wait_done(
        self, client: httpx.Client, batch_id: str, timeout: float, cap: float | None = None
    ) -> dict[str, Any]:
        """Poll the batch until it is final, or until ``cap`` seconds have passed.

        In the answer ``_done_at`` is the wall time it was first seen final (or
        capped), ``_polls`` how many polls that took (their Redis commands are not
        the batch's) and ``_capped`` whether the cap ended the wait.
        """
        started = time.monotonic()
        polls = 0
        while time.monotonic() - started < timeout:
            batch = _ok(client.get(f"/v1/batches/{batch_id}"))
            polls += 1
            capped = cap is not None and time.monotonic() - started > cap
            if batch["status"] in FINAL_STATUSES or capped:
                batch.update(_done_at=time.time(), _polls=polls, _capped=capped)
                return batch
            counts = batch["request_counts"]
            done = counts["completed"] + counts["failed"]
            near_end = done >= FAST_POLL_FROM * max(1, counts["total"])
            time.sleep(FAST_POLL_SECONDS if near_end else SLOW_POLL_SECONDS)
        raise RuntimeError(f"batch {batch_id} did not finish within {timeout} s")

    def cancel(self, client: httpx.Client, batch_id: str, timeout: float) -> None:
        """Cancel a batch and wait until it has stopped, freeing the workers."""
        _ok(client.post(f"/v1/batches/{batch_id}/cancel"))
        self.wait_done(client, batch_id, timeout)


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.url} answered {response.status_code}: {response.text[:500]}"
        )
    data: dict[str, Any] = response.json()
    return data

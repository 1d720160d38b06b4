"""What every scenario shares: the run context, the sizes, and timing one batch run.

Throughput is always lines / seconds from the upstream's first call to the
batch finished: for the service, the moment a poll first sees it completed;
for a baseline, the moment the script has written its last result.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import procs, redis_probe
from bench.report import Check
from bench.service import FINAL_STATUSES, Service, ServiceSettings
from bench.upstream_control import UpstreamProcess
from bench.workload import write_batch

UPSTREAM_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is: the issue's sizes, or small ones for ``--quick``."""

    ingest_lines: int = 50_000
    ingest_text_chars: int = 950
    upload_lines: int = 50_000
    upload_text_chars: int = 3_900
    text_chars: int = 600
    latency: float = 0.2
    concurrency: int = 128
    latency_lines: int = 10_000
    overhead_lines: int = 20_000
    overhead_concurrency: int = 64
    realtime_requests: int = 200
    realtime_load_lines: int = 30_000
    output_lines: int = 50_000
    scaleout_lines: int = 10_000
    profile_lines: int = 5_000
    capacity_seconds: float = 3.0
    gateway_clients: int = 64
    gateway_seconds: float = 10.0
    million_lines: int = 1_000_000
    million_timeout: float = 3600.0
    # A throughput run still going after this long is measured over the lines done so far.
    run_cap: float = 75.0
    batch_timeout: float = 600.0


QUICK = Sizes(
    ingest_lines=2_000,
    upload_lines=1_000,
    upload_text_chars=2_000,
    latency=0.05,
    concurrency=32,
    latency_lines=400,
    overhead_lines=400,
    overhead_concurrency=32,
    realtime_requests=10,
    realtime_load_lines=3_000,
    output_lines=1_000,
    scaleout_lines=400,
    profile_lines=300,
    capacity_seconds=0.5,
    gateway_clients=8,
    gateway_seconds=2.0,
    million_lines=5_000,
    million_timeout=300.0,
    run_cap=20.0,
    batch_timeout=60.0,
)


@dataclass
class Context:
    """Where a scenario runs: its scratch space, Redis, upstream and sizes."""

    work_dir: Path
    redis_url: str
    upstream: UpstreamProcess
    sizes: Sizes
    profile: bool = True
    # Where files worth keeping after the run go (the profile), beside the JSON.
    artifacts: Path = Path("bench")
    # Runs one scenario can reuse from another in the same invocation (scenario 6 from 2).
    shared_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _files: dict[tuple[int, int], Path] = field(default_factory=dict)

    def batch_file(self, lines: int, text_chars: int) -> Path:
        """A JSONL batch of ``lines`` lines, written once per size."""
        key = (lines, text_chars)
        if key not in self._files:
            path = self.work_dir / f"batch-{lines}-{text_chars}.jsonl"
            write_batch(path, lines, text_chars)
            self._files[key] = path
        return self._files[key]

    def scratch(self, name: str) -> Path:
        path = self.work_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def service(
        self, name: str, settings: ServiceSettings, workers: int | None = None
    ) -> Iterator[Service]:
        """A service started on an emptied Redis database, stopped at the end."""
        redis_probe.flush(self.redis_url)
        service = Service(self.redis_url, self.upstream.base_url, self.scratch(name), settings)
        try:
            yield service.start(workers=workers)
        finally:
            service.stop()


def lines_per_second(lines: int, first_at: float | None, done_at: float) -> tuple[float, float]:
    """``(seconds, lines/s)`` from the upstream's first call to ``done_at``."""
    if first_at is None:
        raise RuntimeError("the upstream saw no call")
    seconds = max(done_at - first_at, 1e-6)
    return round(seconds, 3), round(lines / seconds, 1)


def service_run(
    ctx: Context, service: Service, path: Path, latency: float, *, capped: bool = True
) -> dict[str, Any]:
    """Submit ``path`` as a batch and time it to completion, or (``capped``) over ``run_cap`` s.

    A capped run is measured over the lines finished when the cap struck; the
    rest of the batch is then cancelled so the next run starts on idle workers.
    """
    ctx.upstream.reset(latency)
    with service.client() as client:
        submit_start = time.perf_counter()
        batch = service.submit_jsonl(client, path)
        submit_s = time.perf_counter() - submit_start
        done = service.wait_done(
            client, batch["id"], ctx.sizes.batch_timeout, cap=ctx.sizes.run_cap if capped else None
        )
        stats = ctx.upstream.stats()
        if done["_capped"]:
            service.cancel(client, batch["id"], ctx.sizes.batch_timeout)
        errors = error_codes(client, batch["id"]) if done["request_counts"]["failed"] else {}
    counts = done["request_counts"]
    measured = counts["completed"] + counts["failed"]
    seconds, rate = lines_per_second(measured, stats["first_at"], done["_done_at"])
    return {
        "batch_id": batch["id"],
        "status": done["status"],
        "lines": counts["total"],
        "lines_measured": measured,
        "capped": done["_capped"],
        "failed": counts["failed"],
        "error_codes": errors,
        "worker_errors": service.worker_errors() if counts["failed"] else {},
        "submit_s": round(submit_s, 3),
        "seconds": seconds,
        "lines_per_s": rate,
        "polls": done["_polls"],
        "upstream_calls": stats["calls"],
        "upstream_max_in_flight": stats["max_in_flight"],
    }


def error_codes(client: httpx.Client, batch_id: str) -> dict[str, int]:
    """How many of a batch's lines failed with each error code (a fast run must not hide them)."""
    batch = client.get(f"/v1/batches/{batch_id}").json()
    if batch["status"] not in FINAL_STATUSES:
        return {"(batch not finished)": batch["request_counts"]["failed"]}
    codes: Counter[str] = Counter()
    with client.stream("GET", f"/v1/batches/{batch_id}/output") as response:
        for raw in response.iter_lines():
            if raw:
                error = orjson.loads(raw).get("error")
                if error:
                    codes[f"{error['code']}: {error['message'][:120]}"] += 1
    return dict(codes.most_common(5))


def baseline_run(
    ctx: Context, client: str, path: Path, latency: float, concurrency: int
) -> dict[str, Any]:
    """Run one baseline script in its own process and time it the same way."""
    ctx.upstream.reset(latency)
    output = ctx.work_dir / f"{client}-results.jsonl"
    command = [
        sys.executable,
        "-m",
        "bench.baselines",
        client,
        "--input",
        str(path),
        "--output",
        str(output),
        "--base-url",
        ctx.upstream.base_url,
        "--concurrency",
        str(concurrency),
        "--model",
        UPSTREAM_MODEL,
        "--cap",
        str(ctx.sizes.run_cap),
    ]
    finished = subprocess.run(
        command, env=procs.base_env(), capture_output=True, timeout=ctx.sizes.batch_timeout
    )
    if finished.returncode != 0:
        raise RuntimeError(f"baseline {client} failed: {finished.stderr.decode()[-2000:]}")
    report = orjson.loads(finished.stdout.splitlines()[-1])
    stats = ctx.upstream.stats()
    seconds, rate = lines_per_second(report["done"], stats["first_at"], report["done_at"])
    with output.open("rb") as results:
        written = sum(1 for _ in results)
    return {
        "lines": report["lines"],
        "lines_measured": report["done"],
        "capped": report["done"] < report["lines"],
        "failed": report["failed"],
        "result_lines": written,
        "seconds": seconds,
        "lines_per_s": rate,
        "upstream_calls": stats["calls"],
        "upstream_max_in_flight": stats["max_in_flight"],
    }


def capped_notes(runs: dict[str, dict[str, Any]]) -> list[str]:
    """A note for each run the time cap cut short."""
    return [
        f"{name} was still running at the time cap; measured over its first "
        f"{run['lines_measured']} of {run['lines']} lines"
        for name, run in runs.items()
        if run.get("capped")
    ]


def failure_checks(runs: dict[str, dict[str, Any]]) -> list[Check]:
    """A failing check for each run that lost lines: speed bought with failures is no speed."""
    return [
        Check(f"{name} failed lines", run["failed"], "= 0", False)
        for name, run in runs.items()
        if run.get("failed")
    ]

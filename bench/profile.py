"""Where a worker's time goes: a sampling profile of one batch run, split by phase.

``py-spy`` attaches to a running worker (no change to the service, little
slowdown) and records collapsed stacks of the thread holding the GIL, so the
split is of the time the worker spends running Python. Each stack is put in the phase of the
innermost service or task function on it that marks one (parse, render, HTTP,
validate, shape, store, ...); stacks with no such function fall to the library
they are in (dramatiq is the queue, asyncio the event loop). Without py-spy on
the PATH the profile is skipped and says so.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import procs
from bench.runs import Context, service_run
from bench.service import ServiceSettings

SAMPLE_RATE = 200
TOP_FRAMES = 15

# Innermost match wins, so a phase nested in another (render inside run_task) is its own.
# Keys are ``Class.method`` or bare function names; qualified keys are checked first.
PHASE_FUNCTIONS: dict[str, str] = {
    "ChunkRunner.run_chunk": "worker chunk loop",
    "run_and_record": "worker chunk loop",
    "ResultStore.load_chunk": "load lines (Redis read + orjson)",
    "parse_task_body": "parse (task body validation)",
    "run_task": "run_task (request build, model_dump)",
    "render_messages": "render (prompt templates)",
    "render_prompt": "render (prompt templates)",
    # httpcore's pool scans every connection on each request and each response.
    "AsyncConnectionPool._assign_requests_to_connections": "HTTP pool bookkeeping (httpcore)",
    "OpenAICompatibleBackend.complete": "HTTP (request build + call)",
    "OpenAICompatibleBackend._post_with_retries": "HTTP (request build + call)",
    "_chat_completion_or_raise": "HTTP (request build + call)",
    "_result_of": "validate (answer JSON + schema + postprocess)",
    "answer_candidates": "validate (answer JSON + schema + postprocess)",
    "_run_task_line": "shape output line",
    "chat_completion_body": "shape output line",
    "_output_line": "shape output line",
    "derived_id": "shape output line",
    "ChunkRunner._record": "store (record result script)",
    "ResultStore.record_results": "store (record result script)",
    "ChunkRunner._stop_reason": "status check (Redis)",
    "ResultStore.batch_status": "status check (Redis)",
    "Sweeper.run_forever": "sweeper",
}
# Checked only when no function above is on the stack, innermost file first.
PHASE_LIBRARIES: list[tuple[str, str]] = [
    ("dramatiq/", "queue (dramatiq consume/ack)"),
    ("jinja2/", "render (prompt templates)"),
    ("jsonschema/", "validate (answer JSON + schema + postprocess)"),
    ("httpx/", "HTTP (request build + call)"),
    ("httpcore/", "HTTP (request build + call)"),
    ("h11/", "HTTP (request build + call)"),
    ("anyio/", "HTTP (request build + call)"),
    ("redis/", "store (record result script)"),
    ("asyncio/", "event loop"),
    ("selectors.py", "event loop"),
]
NO_FRAME = "native code (no Python frame)"


def _frames(stack: str) -> list[tuple[str, str]]:
    """``(function, file)`` pairs, outermost first, from one collapsed stack."""
    frames = []
    for frame in stack.split(";"):
        function, _, where = frame.partition(" (")
        frames.append((function.strip(), where.rsplit(":", 1)[0]))
    return frames


def _in_library(where: str, marker: str) -> bool:
    # py-spy shortens site-packages and stdlib paths to ``package/module.py``.
    return where.startswith(marker) or f"/{marker}" in where


def phase_of(stack: str) -> str:
    frames = [frame for frame in _frames(stack) if frame[0]]
    if not frames:
        return NO_FRAME
    for function, _ in reversed(frames):
        phase = PHASE_FUNCTIONS.get(function) or PHASE_FUNCTIONS.get(function.rsplit(".", 1)[-1])
        if phase is not None:
            return phase
    for _, where in reversed(frames):
        for marker, phase in PHASE_LIBRARIES:
            if _in_library(where, marker):
                return phase
    return "other"


def summarise(raw: Path) -> dict[str, Any]:
    """Phase shares and the hottest leaf frames of a py-spy ``raw`` (collapsed) file."""
    phases: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        phases[phase_of(stack)] += count
        leaves[stack.rsplit(";", 1)[-1]] += count
    share = {phase: round(100 * count / total, 1) for phase, count in phases.most_common()}
    hot = {leaf: round(100 * count / total, 1) for leaf, count in leaves.most_common(TOP_FRAMES)}
    return {"samples": total, "phase_percent": share, "hottest_frames_percent": hot}


def profile_worker(ctx: Context, settings: ServiceSettings, path: Path) -> dict[str, Any]:
    """Run ``path`` on one worker under py-spy; the phase split of its busy samples."""
    # The venv's own bin first: ``.venv/bin/python -m bench`` runs without an activated venv.
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    with ctx.service("s3-profile", settings, workers=0) as service:
        worker = service.start_worker()
        # Start sampling once the worker has booted: imports are not the work.
        procs.wait_until_quiet(worker.pid)
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        raw = ctx.artifacts / "results-worker-profile.txt"
        recorder = subprocess.Popen(
            [
                *(spy, "record", "--pid", str(worker.pid), "--format", "raw"),
                *("--output", str(raw), "--rate", str(SAMPLE_RATE), "--nonblocking", "--gil"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started = time.perf_counter()
        run = service_run(ctx, service, path, 0.0)
        recorder.send_signal(signal.SIGINT)
        sampled_s = time.perf_counter() - started
        _, errors = recorder.communicate(timeout=60)
    if not raw.exists():
        return {"skipped": f"py-spy recorded nothing: {errors.decode()[-500:]}"}
    summary = summarise(raw)
    return {
        "lines": run["lines_measured"],
        "lines_per_s_under_profiler": run["lines_per_s"],
        "raw_stacks": str(raw),
        # Only the thread holding the GIL is sampled, so this is the share of the
        # run the worker spent executing Python: near 1 means it is CPU-bound.
        "gil_busy_share": round(summary["samples"] / (SAMPLE_RATE * sampled_s), 2),
        **summary,
    }

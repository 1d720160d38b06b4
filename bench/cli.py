"""``python -m bench``: run the scenarios, print the table, write the figures to JSON."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import redis_probe, report
from bench.report import Check, ScenarioResult
from bench.runs import QUICK, Context, Sizes
from bench.scenarios import (
    gateway,
    ingest,
    latency,
    million,
    output,
    overhead,
    realtime,
    scaleout,
)
from bench.upstream_control import UpstreamProcess, measure_capacity

SCENARIOS: dict[str, tuple[str, Callable[[Context], ScenarioResult]]] = {
    "1": (ingest.TITLE, ingest.run),
    "2": (latency.TITLE, latency.run),
    "3": (overhead.TITLE, overhead.run),
    "4": (realtime.TITLE, realtime.run),
    "5": (output.TITLE, output.run),
    "6": (scaleout.TITLE, scaleout.run),
    "7": (gateway.TITLE, gateway.run),
    "8": (million.TITLE, million.run),
}
DEFAULT_OUT = Path("bench/results.json")
# Run only when named in --only: too long for every run.
ON_REQUEST = frozenset({"8"})


def _parse_only(text: str | None) -> list[str]:
    if not text:
        return [number for number in SCENARIOS if number not in ON_REQUEST]
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [number for number in chosen if number not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {', '.join(unknown)}; pick from 1-8")
    return sorted(set(chosen), key=int)


def _upstream_capacity(ctx: Context) -> dict[str, Any]:
    """What the upstream serves alone: at no latency, and at the scenarios' latency."""
    sizes = ctx.sizes
    return {
        "no_latency": measure_capacity(ctx.upstream, 0.0, 64, sizes.capacity_seconds),
        "scenario_latency": measure_capacity(
            ctx.upstream, sizes.latency, 4 * sizes.concurrency, sizes.capacity_seconds
        ),
    }


def _run_one(number: str, ctx: Context) -> ScenarioResult:
    title, run = SCENARIOS[number]
    print(f"[bench] scenario {number}: {title} ...", flush=True)
    start = time.perf_counter()
    try:
        result = run(ctx)
    except Exception as exc:
        # One broken scenario must not lose the others' figures.
        traceback.print_exc()
        result = ScenarioResult(number, title)
        result.checks = [Check("scenario ran", None, "no error", False)]
        result.notes.append(f"failed: {type(exc).__name__}: {exc}")
    result.figures["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"[bench] scenario {number} done in {result.figures['wall_s']} s", flush=True)
    return result


def run_bench(
    numbers: Sequence[str], sizes: Sizes, out: Path, profile: bool, redis_url: str | None
) -> int:
    """Run the chosen scenarios; returns the process exit code."""
    started = time.perf_counter()
    info = report.machine()
    results: list[ScenarioResult] = []
    work_dir = Path(tempfile.mkdtemp(prefix="textbatch-bench-"))
    artifacts = out.parent
    try:
        with redis_probe.bench_redis(redis_url) as (url, redis_where):
            upstream = UpstreamProcess.start(work_dir / "upstream.log")
            try:
                ctx = Context(work_dir, url, upstream, sizes, profile, artifacts=artifacts)
                capacity = _upstream_capacity(ctx)
                print(f"[bench] upstream alone: {capacity}", flush=True)
                results = [_run_one(number, ctx) for number in numbers]
            finally:
                upstream.stop()
            redis_probe.flush(url)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    document = {
        "machine": info,
        "redis": redis_where,
        "sizes": sizes.__dict__,
        "upstream_capacity": capacity,
        "scenarios": {result.number: result for result in results},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    report.write_json(out, document)
    print(report.table(results, info))
    print(f"[bench] figures written to {out} ({document['wall_s']} s in all)")
    failed = any(note.startswith("failed:") for result in results for note in result.notes)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 2,3")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--no-profile", action="store_true", help="skip scenario 3's profile")
    parser.add_argument(
        "--redis-url",
        help="use this Redis database (flushed!) instead of a private embedded Valkey",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    return run_bench(_parse_only(args.only), sizes, args.out, not args.no_profile, args.redis_url)

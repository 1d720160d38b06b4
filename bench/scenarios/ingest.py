"""Scenario 1, ingest: a large JSONL ``POST /v1/batches``, a 200 MB upload, a batch from it.

No worker runs, so the API's own work is all that is timed. The reference is
a bare loop that reads the same file and parses each line with ``orjson``.
Both sides are timed ``REPEATS`` times and the best of each is compared: on a
shared machine one sample can be off by half.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from bench.procs import MIB, RssWatch
from bench.report import Check, ScenarioResult, ratio
from bench.runs import Context
from bench.service import Service, ServiceSettings

TITLE = "ingest"
RSS_LIMIT_MIB = 100
TIME_RATIO_LIMIT = 3.0
REPEATS = 3


def bare_parse_seconds(path: Path) -> float:
    """Read ``path`` and parse every line with orjson, in this process (best of REPEATS)."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        with path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    orjson.loads(line)
        best = min(best, time.perf_counter() - start)
    return best


def _upload(client: httpx.Client, path: Path) -> dict[str, object]:
    with path.open("rb") as content:
        response = client.post(
            "/v1/files",
            files={"file": (path.name, content, "application/jsonl")},
            data={"purpose": "batch"},
        )
    response.raise_for_status()
    uploaded: dict[str, object] = response.json()
    return uploaded


def _batch_from_file(client: httpx.Client, file_id: object) -> dict[str, object]:
    response = client.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions"},
    )
    response.raise_for_status()
    batch: dict[str, object] = response.json()
    return batch


def run(ctx: Context) -> ScenarioResult:
    sizes = ctx.sizes
    result = ScenarioResult("1", TITLE)
    jsonl = ctx.batch_file(sizes.ingest_lines, sizes.ingest_text_chars)
    big = ctx.batch_file(sizes.upload_lines, sizes.upload_text_chars)
    parse_jsonl = bare_parse_seconds(jsonl)
    parse_big = bare_parse_seconds(big)
    settings = ServiceSettings(workers=0)
    with ctx.service("s1-ingest", settings, workers=0) as service:
        figures = _measure(service, jsonl, big)
    figures.update(
        jsonl_lines=sizes.ingest_lines,
        jsonl_mb=round(jsonl.stat().st_size / MIB, 1),
        upload_lines=sizes.upload_lines,
        upload_mb=round(big.stat().st_size / MIB, 1),
        bare_parse_jsonl_s=round(parse_jsonl, 3),
        bare_parse_upload_s=round(parse_big, 3),
    )
    figures["jsonl_ingest_ratio"] = ratio(figures["jsonl_submit_s"], parse_jsonl)
    figures["file_batch_ingest_ratio"] = ratio(figures["file_batch_s"], parse_big)
    upload_mb = big.stat().st_size / MIB
    figures["upload_mb_per_s"] = ratio(upload_mb, figures["upload_s"])
    result.figures = figures
    result.settings = {**settings.as_record(), "max_body_bytes": 300 * MIB}
    result.checks = [
        Check.at_most(
            f"JSONL batch ({figures['jsonl_mb']:g} MB) time / bare parse",
            figures["jsonl_ingest_ratio"],
            TIME_RATIO_LIMIT,
            "x",
        ),
        Check.at_most(
            f"batch from file ({figures['upload_mb']:g} MB) time / bare parse",
            figures["file_batch_ingest_ratio"],
            TIME_RATIO_LIMIT,
            "x",
        ),
        Check.at_most("API RSS growth, JSONL batch", figures["jsonl_rss_growth_mib"], 100, " MiB"),
        Check.at_most("API RSS growth, file upload", figures["upload_rss_growth_mib"], 100, " MiB"),
        Check.at_most(
            "API RSS growth, batch from file", figures["file_batch_rss_growth_mib"], 100, " MiB"
        ),
    ]
    return result


def _measure(service: Service, jsonl: Path, big: Path) -> dict[str, float | None]:
    figures: dict[str, float | None] = {}
    with service.client() as client:
        with RssWatch(service.api_pid) as watch:
            figures["jsonl_submit_s"] = _best_of(lambda: service.submit_jsonl(client, jsonl))
        figures.update(watch.figures("jsonl"))
        with RssWatch(service.api_pid) as watch:
            start = time.perf_counter()
            uploaded = _upload(client, big)
            figures["upload_s"] = round(time.perf_counter() - start, 3)
        figures.update(watch.figures("upload"))
        with RssWatch(service.api_pid) as watch:
            figures["file_batch_s"] = _best_of(lambda: _batch_from_file(client, uploaded["id"]))
        figures.update(watch.figures("file_batch"))
    return figures


def _best_of(action: Callable[[], object]) -> float:
    """The shortest of REPEATS timed runs of ``action``, in seconds."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return round(best, 3)

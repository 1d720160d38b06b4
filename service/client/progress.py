"""Waiting for a batch with a live progress bar: done / failed / total, rate and ETA."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from service.client.connection import Service

FINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})

# Polls are spaced out: a 6-line batch needs a handful of requests, not hundreds.
POLL_SECONDS = 0.5


def _pace(batch: dict[str, Any]) -> tuple[str, str]:
    """The server's rate and ETA for the bar (it measures both from the batch's own clock)."""
    progress = batch.get("progress")
    if not progress:
        return _overall_rate(batch), "--:--:--"
    eta = datetime.fromtimestamp(progress["eta_at"]).strftime("%H:%M:%S")
    return f"{progress['lines_per_second']:.1f} lines/s", eta


def _overall_rate(batch: dict[str, Any]) -> str:
    """A finished batch's average rate, from its own timestamps; "-" before any line is done."""
    started = batch.get("in_progress_at")
    ended = next(
        (batch[name] for name in ("completed_at", "cancelled_at", "expired_at") if batch.get(name)),
        None,
    )
    counts = batch["request_counts"]
    finished = counts["completed"] + counts["failed"]
    if started is None or ended is None or finished == 0:
        return "-"
    # Timestamps are whole seconds: a batch done within one counts as taking one.
    return f"{finished / max(1, ended - started):.1f} lines/s"


def _fields(batch: dict[str, Any]) -> dict[str, Any]:
    counts = batch["request_counts"]
    rate, eta = _pace(batch)
    return {
        "done": counts["completed"],
        "failed": counts["failed"],
        "rate": rate,
        "eta": eta,
    }


def wait_for_batch(service: Service, batch: dict[str, Any], console: Console) -> dict[str, Any]:
    """Poll until the batch has finished, drawing the bar on ``console``; the final batch."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[done]} done / {task.fields[failed]} failed / {task.total} total"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("ETA {task.fields[eta]}"),
    )
    total = batch["request_counts"]["total"]
    with Progress(*columns, console=console, refresh_per_second=8, transient=False) as bar:
        task = bar.add_task(batch["id"], total=total, **_fields(batch))
        while batch["status"] not in FINAL_STATUSES:
            time.sleep(POLL_SECONDS)
            batch = service.json("GET", f"/v1/batches/{batch['id']}")
            counts = batch["request_counts"]
            bar.update(task, completed=counts["completed"] + counts["failed"], **_fields(batch))
        counts = batch["request_counts"]
        bar.update(task, completed=counts["completed"] + counts["failed"], **_fields(batch))
    return batch

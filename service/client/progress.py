"""Waiting for a batch with a live progress bar: done / failed / total, rate and ETA."""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    finished = finished_lines(batch)
    if started is None or ended is None or finished == 0:
        return "-"
    # Timestamps are whole seconds: a batch done within one counts as taking one.
    return f"{finished / max(1, ended - started):.1f} lines/s"


def finished_lines(batch: dict[str, Any]) -> int:
    """Lines with a result, however they ended (an older service counts only three kinds)."""
    counts = batch["request_counts"]
    return sum(int(counts.get(name, 0)) for name in ("completed", "failed", "cancelled", "expired"))


def _fields(batch: dict[str, Any]) -> dict[str, Any]:
    counts = batch["request_counts"]
    rate, eta = _pace(batch)
    return {
        "done": counts["completed"],
        "failed": finished_lines(batch) - counts["completed"],
        "rate": rate,
        "eta": eta,
    }


def _followed(service: Service, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The batch as it changes, from its event stream; then by polling if that ends early."""
    for event, data in service.events(f"/v1/batches/{batch['id']}/events"):
        if event in {"batch", "done"}:
            batch = data
            yield batch
        if event == "done" or batch["status"] in FINAL_STATUSES:
            return
    while batch["status"] not in FINAL_STATUSES:
        time.sleep(POLL_SECONDS)
        batch = service.json("GET", f"/v1/batches/{batch['id']}")
        yield batch


def wait_for_batch(service: Service, batch: dict[str, Any], console: Console) -> dict[str, Any]:
    """Follow the batch until it has finished, drawing the bar on ``console``; the final batch.

    The service's event stream tells each change as it happens; polling every
    ``POLL_SECONDS`` stands in when there is none.
    """
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
        if batch["status"] not in FINAL_STATUSES:
            for latest in _followed(service, batch):
                bar.update(task, completed=finished_lines(latest), **_fields(latest))
                batch = latest
        bar.update(task, completed=finished_lines(batch), **_fields(batch))
    return batch

"""A running batch's pace: lines per second since it started and when it should finish."""

from __future__ import annotations

import time

from pydantic import BaseModel

from service.store.records import BatchRecord


class BatchProgress(BaseModel):
    """Set while a batch runs and at least one line has finished; null otherwise.

    ``lines_per_second`` is the lines finished (however they ended) over the seconds
    since the batch went ``in_progress``; ``eta_at`` (Unix seconds) is now plus the
    lines left at that rate.
    """

    lines_per_second: float
    eta_at: int


def batch_progress(record: BatchRecord, now: float | None = None) -> BatchProgress | None:
    started = record.timestamps["in_progress_at"]
    if record.status.value != "in_progress" or started is None:
        return None
    counters = record.counters
    finished = record.finished_lines
    if finished <= 0:
        return None
    moment = time.time() if now is None else now
    # Timestamps are whole seconds: at least one second has passed once a line has finished.
    elapsed = max(1.0, moment - started)
    rate = finished / elapsed
    left = max(0, counters["total"] - finished)
    return BatchProgress(lines_per_second=round(rate, 3), eta_at=int(moment + left / rate + 0.999))

"""The batch lifecycle: its statuses, the moves between them, how lines end, why they stop.

The moves are made by Lua scripts so that each is atomic; ``TRANSITIONS`` names
every move and the script that makes it, so the whole lifecycle reads
in one place.
"""

from __future__ import annotations

from enum import StrEnum


class BatchStatus(StrEnum):
    """A batch's lifecycle, with the hosted batch API's names."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)

# Every status a batch may move to from each status.
TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    # Intake commits a batch in_progress, or failed when its input was rejected
    # (``records.NewBatch``). ``request_cancel.lua`` moves a running batch to cancelling;
    # ``record_results.lua`` finishes a batch when its last line is recorded: cancelled
    # when it was cancelling, expired when a line ran out of its window, else completed.
    # Each move to a final status also writes the batch's webhook event to the outbox
    # (``service.store.webhook_outbox``) in the same step.
    BatchStatus.IN_PROGRESS: frozenset(
        {BatchStatus.CANCELLING, BatchStatus.COMPLETED, BatchStatus.EXPIRED}
    ),
    BatchStatus.CANCELLING: frozenset({BatchStatus.CANCELLED}),
    # The hosted API's names that no batch holds today: ``request_cancel.lua`` would
    # cancel a validating one; ``finalizing_at`` stamps the move that finishes a batch.
    BatchStatus.VALIDATING: frozenset({BatchStatus.CANCELLING}),
    BatchStatus.FINALIZING: frozenset(),
    BatchStatus.FAILED: frozenset(),
    BatchStatus.COMPLETED: frozenset(),
    BatchStatus.EXPIRED: frozenset(),
    BatchStatus.CANCELLED: frozenset(),
}


class LineOutcome(StrEnum):
    """How a line ended; all but ``succeeded`` put it in the batch's error file."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# Why a line is not run: the error code and message its output line gets, and its outcome.
StopReason = tuple[str, str, LineOutcome]
CANCELLED = (
    "batch_cancelled",
    "The batch was cancelled before this line ran.",
    LineOutcome.CANCELLED,
)
EXPIRED = (
    "batch_expired",
    "The batch's completion window ended before this line finished.",
    LineOutcome.EXPIRED,
)

# Lines of an upstream batch (native lane) that ended before they ran.
UPSTREAM_BATCH_EXPIRED = (
    "upstream_batch_expired",
    "The upstream batch holding this line expired before the line ran.",
    LineOutcome.FAILED,
)
UPSTREAM_BATCH_FAILED = (
    "upstream_batch_failed",
    "The upstream batch holding this line failed or was cancelled before the line ran.",
    LineOutcome.FAILED,
)


def stop_reason(
    status: BatchStatus | None, expires_at: int | None, now: float
) -> StopReason | None:
    """Why a batch in ``status`` no longer wants its unrun lines run, if it does not."""
    if status in {BatchStatus.CANCELLING, BatchStatus.CANCELLED}:
        return CANCELLED
    if status is BatchStatus.EXPIRED or (expires_at is not None and now >= expires_at):
        return EXPIRED
    return None

"""Every Redis key textbatch uses, built in one place and namespaced under ``textbatch:``."""

from __future__ import annotations

PREFIX = "textbatch"


def batch(batch_id: str) -> str:
    """Hash: the batch's metadata, status, timestamps and counters."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_lines(batch_id: str) -> str:
    """List: the batch's validated input lines, index = line position."""
    return f"{PREFIX}:batch:{batch_id}:lines"


def batch_results(batch_id: str) -> str:
    """Hash: line index -> the finished output line; HSETNX makes it write-once."""
    return f"{PREFIX}:batch:{batch_id}:results"


def staging_lines(upload_id: str) -> str:
    """List: lines of a submission still being validated; expires if the API dies."""
    return f"{PREFIX}:staging:{upload_id}"


def owner_batches(owner: str) -> str:
    """Sorted set: an API key's batch ids scored by creation order."""
    return f"{PREFIX}:owner:{owner}:batches"


def undispatched() -> str:
    """Sorted set: batches stored but whose chunks may not all be queued yet."""
    return f"{PREFIX}:undispatched"

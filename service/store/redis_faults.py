"""Which Redis errors are the store's own trouble (down, loading, disk full), not the caller's."""

from __future__ import annotations

from redis import exceptions as redis_errors

# Replies of a Redis that is alive but cannot serve writes for now.
_UNAVAILABLE_REPLIES = ("MISCONF", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN")


def is_disk_refusal(exc: redis_errors.RedisError) -> bool:
    """Redis refuses writes after failing to write its AOF or RDB (a full disk, mostly)."""
    # Found anywhere: in a pipeline the reply comes wrapped ("Command # 1 ... caused error").
    return "MISCONF" in str(exc) or "No space left" in str(exc)


def is_store_fault(exc: redis_errors.RedisError) -> bool:
    """Redis unreachable, restarting, loading, or refusing writes for a full disk."""
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return True  # BusyLoadingError is a ConnectionError
    message = str(exc)
    return any(reply in message for reply in _UNAVAILABLE_REPLIES)

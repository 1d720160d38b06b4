"""How long to wait between attempts at an upstream call, and how often to try."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# 2**62 already dwarfs any sane backoff_max; capping the exponent keeps a huge
# attempt number from overflowing the float conversion.
_MAX_EXPONENT = 62


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts allowed per call and the backoff between them, in seconds."""

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.retry_after_max < 0:
            raise ValueError("backoff and retry-after limits must not be negative")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (counted from 1).

        Full jitter spreads the retries of many concurrent lines so they do not
        hit a recovering upstream in lockstep. A Retry-After from the upstream is a
        floor, capped so a hostile or confused server cannot park a worker for long.
        """
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        ceiling = min(self.backoff_max, self.backoff_base * 2.0**exponent)
        wait = random.uniform(0.0, ceiling)
        if retry_after is not None and math.isfinite(retry_after):
            wait = max(wait, min(max(retry_after, 0.0), self.retry_after_max))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Read a Retry-After header: delta-seconds or an HTTP-date; ``None`` if absent or unreadable.

    A date in the past means "now" and gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text)
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until_http_date(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; a zone-less parse means the same.
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)

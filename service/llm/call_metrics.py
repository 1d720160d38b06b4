"""What one attempt at an upstream call tells the metrics: its status class, retry reason, time.

Labels stay bounded: a status class (``2xx``…, ``timeout``, ``connection_error``,
``too_large``), and a retry reason made of the failure's kind or the transient
status that caused it (``http_429``), never a message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import TracebackType

import aiohttp

from service.errors import LLMError, UpstreamTimeout
from service.llm.http_exchange import AnswerTooLarge
from service.observability.metrics import count_upstream_call, upstream_in_flight

NOT_RETRIED = "none"
# The upstream refused a parameter we chose to send; the call went again without it.
PARAMETER_REFUSED = "parameter_refused"


class AttemptRecord:
    """One attempt at a call; counted once the next attempt begins or the call ends."""

    __slots__ = ("retry_reason", "seconds", "status_class", "upstream")

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        # None until something was sent: an attempt cancelled while waiting is not a call.
        self.status_class: str | None = None
        self.retry_reason = NOT_RETRIED
        self.seconds = 0.0

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Around the exchange: the call is in flight, timed, and its failure classed."""
        upstream_in_flight(self.upstream, 1)
        started = time.monotonic()
        try:
            yield
        except TimeoutError:
            self.status_class = "timeout"
            raise
        except AnswerTooLarge:
            self.status_class = "too_large"
            raise
        except aiohttp.ClientError:
            self.status_class = "connection_error"
            raise
        finally:
            self.seconds = time.monotonic() - started
            upstream_in_flight(self.upstream, -1)

    def answered(self, status: int) -> None:
        self.status_class = f"{status // 100}xx"

    def retried_for(self, failure: LLMError) -> None:
        self.retry_reason = retry_reason(failure)

    def count(self) -> None:
        if self.status_class is not None:
            count_upstream_call(self.upstream, self.status_class, self.retry_reason, self.seconds)


class AttemptRecords:
    """The attempts of one call: each is counted when it is known whether it was retried."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._current: AttemptRecord | None = None

    def begin(self) -> AttemptRecord:
        self._finish()
        self._current = AttemptRecord(self.upstream)
        return self._current

    def _finish(self) -> None:
        if self._current is not None:
            self._current.count()
            self._current = None

    def __enter__(self) -> AttemptRecords:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish()


def retry_reason(failure: LLMError) -> str:
    """Why a failed attempt is tried again, as a label value."""
    if isinstance(failure, UpstreamTimeout):
        return "timeout"
    status = failure.upstream_status
    if status is None:
        return "connection"
    if 200 <= status < 300:
        return "unusable_body"
    return f"http_{status}"

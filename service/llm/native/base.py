"""What the native lane needs from an upstream's own batch API, whatever its dialect.

A dialect (OpenAI's ``/v1/files`` + ``/v1/batches``, Anthropic's
``/v1/messages/batches``) implements ``NativeBatchClient``. Requests and results
are in the OpenAI chat-completions shape on our side; a dialect translates to and
from its own wire shape. The worker's native runner drives a client: it never
sees HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class NativeStatus(StrEnum):
    """An upstream batch's state, normalised across dialects."""

    RUNNING = "in_progress"  # validating, in progress or finalizing: keep polling
    COMPLETED = "completed"  # ended; results can be read
    FAILED = "failed"  # refused as a whole (bad input file, ...): no results
    EXPIRED = "expired"  # ran out of its window; results of finished lines can be read
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"  # ended by a cancel; results of finished lines can be read

    @property
    def ended(self) -> bool:
        return self in {
            NativeStatus.COMPLETED,
            NativeStatus.FAILED,
            NativeStatus.EXPIRED,
            NativeStatus.CANCELLED,
        }


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """One line as sent in an upstream batch."""

    # Ours, unique within the upstream batch; results are matched back by it.
    custom_id: str
    # The endpoint on our side, e.g. ``/v1/chat/completions``.
    url: str
    # The request body in the OpenAI shape, ``model`` already the upstream's name.
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class NativeResult:
    """One line's result read back from an upstream batch."""

    custom_id: str
    # ``succeeded``: ``status_code`` and ``body`` hold the answer (an OpenAI-shaped body).
    # ``errored``: the upstream answered the line with an error; ``status_code`` and
    # ``body`` hold it when the upstream gave them. ``canceled`` / ``expired``: never run.
    state: str
    status_code: int | None = None
    body: dict[str, Any] | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class NativeBatch:
    """An upstream batch as last seen."""

    id: str
    status: NativeStatus
    # ``total``, ``completed``, ``failed`` as the upstream counts them.
    request_counts: dict[str, int] = field(default_factory=dict)


class NativeBatchClient(Protocol):
    """An upstream's own batch API."""

    # Limits of one upstream batch; the runner splits larger groups.
    max_lines: int
    max_bytes: int

    async def find(self, tag: str) -> NativeBatch | None:
        """The batch an earlier ``submit`` with this ``tag`` created, if the upstream
        can tell (so a resumed worker never creates a second one)."""
        ...

    async def submit(
        self, tag: str, requests: Sequence[NativeRequest], completion_window: str
    ) -> NativeBatch:
        """Create one upstream batch holding ``requests``, marked with ``tag``."""
        ...

    async def retrieve(self, batch_id: str) -> NativeBatch:
        """The batch's current state."""
        ...

    def results(self, batch_id: str) -> AsyncIterator[NativeResult]:
        """Every result the ended batch has (successes and errors), in any order."""
        ...

    async def cancel(self, batch_id: str) -> NativeBatch:
        """Ask the upstream to cancel; finished lines stay readable."""
        ...

    async def aclose(self) -> None: ...

"""A last check just before a call goes upstream, set by whoever started the work.

A batch worker takes more lines in hand than it has call slots, so a line can
wait for a slot after it last looked at its batch. The worker sets a gate for
each line (a context variable, so every task the line starts sees it) and the
HTTP backend passes it once it holds a slot, before each attempt: a batch
cancelled or expired meanwhile starts no new call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

Gate = Callable[[], Awaitable[None]]

_gate: ContextVar[Gate | None] = ContextVar("textbatch_call_gate", default=None)


class GateClosed(Exception):
    """The work no longer wants its call made; ``reason`` is the gate's own."""

    def __init__(self, reason: object) -> None:
        super().__init__(str(reason))
        self.reason = reason


def set_call_gate(gate: Gate | None) -> None:
    """Gate every call made from this context (and tasks started from it) on ``gate``."""
    _gate.set(gate)


async def pass_call_gate() -> None:
    """Return if a call may go out now; raise ``GateClosed`` if the gate says it may not."""
    gate = _gate.get()
    if gate is not None:
        await gate()

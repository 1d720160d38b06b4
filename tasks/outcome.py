"""What a task run gives back: its result and the accounting of every model call it took."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.llm.base import Usage


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """A task's result with the accounting of every model call it took."""

    result: dict[str, Any]
    model: str
    finish_reason: str
    usage: Usage
    attempts: int
    request_id: str | None


def merged_outcome(outcomes: Sequence[TaskOutcome], result: dict[str, Any]) -> TaskOutcome:
    """One outcome of several runs: ``result``, with every run's usage and attempts."""
    last = outcomes[-1]
    return TaskOutcome(
        result=result,
        model=last.model,
        finish_reason=last.finish_reason,
        usage=sum((outcome.usage for outcome in outcomes), Usage()),
        attempts=sum(outcome.attempts for outcome in outcomes),
        request_id=last.request_id,
    )

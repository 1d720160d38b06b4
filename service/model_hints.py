"""What a line's ``model`` was probably meant to be, for validation messages that help.

A model that is not a task is a pass-through model; when it is a near miss of a task
name ("clasify") the line was almost surely meant as that task, and saying
"messages is required" would send the user the wrong way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib ratio: 'clasify'/'classify' is 0.93, 'sumarize'/'summarize' 0.94, 'extact' 0.92,
# while unrelated names ('gpt-4o-mini', 'translate') stay far below it.
_NEAR_MISS = 0.8

# What the upstream router says of a bare model when no default upstream is set; the
# line's message then names the tasks too.
NO_DEFAULT_UPSTREAM = (
    "no upstream is configured for pass-through models; set TEXTBATCH_LLM_BASE_URL"
)


def _quoted(tasks: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in tasks)


def near_task(model: str, tasks: Iterable[str]) -> str | None:
    """The task name ``model`` is a typo of, if any (case and spacing ignored)."""
    names = list(tasks)
    folded = model.strip().lower()
    if folded in names:
        return folded
    close = difflib.get_close_matches(folded, names, n=1, cutoff=_NEAR_MISS)
    return close[0] if close else None


def did_you_mean(model: str, task: str, tasks: Iterable[str]) -> str:
    return (
        f"model {model!r} is not a task; did you mean {task!r}? The tasks are "
        f"{_quoted(tasks)}; any other model is passed through to an upstream and needs "
        "'messages'."
    )


def no_upstream(model: str, tasks: Iterable[str]) -> str:
    return (
        f"model must be one of {_quoted(tasks)}; got {model!r}. Other models are passed "
        "through to an upstream, and none is configured (set TEXTBATCH_LLM_BASE_URL)."
    )


def passthrough_needs(model: str, required: str, url: str) -> str:
    return (
        f"{required} is required for {url}: {model!r} is not a task ('extract', 'summarize', "
        "'classify'), so the line is passed through to an upstream as it stands."
    )

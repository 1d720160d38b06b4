"""The tasks this service runs, by the ``model`` name a body gives."""

from __future__ import annotations

from tasks.base import AnyTask
from tasks.classify import ClassifyTask
from tasks.extract import ExtractTask
from tasks.summarize import SummarizeTask

TASKS: dict[str, AnyTask] = {
    task.name: task for task in (ExtractTask(), SummarizeTask(), ClassifyTask())
}


def get_task(name: str) -> AnyTask | None:
    """The task called ``name``, or ``None`` when there is none."""
    return TASKS.get(name)

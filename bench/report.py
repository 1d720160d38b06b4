"""Scenario results, the checks against the issue's targets, the table and the JSON file."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


@dataclass
class Check:
    """One figure held against its target; ``passed`` is None when it could not be measured."""

    name: str
    value: float | None
    target: str
    passed: bool | None
    unit: str = ""

    @classmethod
    def at_most(cls, name: str, value: float | None, limit: float, unit: str = "") -> Check:
        passed = None if value is None else value <= limit
        return cls(name, _round(value), f"≤ {limit:g}{unit}", passed, unit)

    @classmethod
    def at_least(cls, name: str, value: float | None, limit: float, unit: str = "") -> Check:
        passed = None if value is None else value >= limit
        return cls(name, _round(value), f"≥ {limit:g}{unit}", passed, unit)


@dataclass
class ScenarioResult:
    """What one scenario measured: its figures, its checks and the settings it ran with."""

    number: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def machine() -> dict[str, Any]:
    """The machine a run was measured on."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "commit": _commit(),
    }


def _commit() -> str:
    """The code measured: the commit, marked when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service", "tasks", "prompts"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2, default=_plain) + b"\n")


def _plain(value: object) -> object:
    if isinstance(value, Check | ScenarioResult):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


def _verdict(check: Check) -> str:
    if check.passed is None:
        # Figures shown for reference have no target to fail.
        return "" if check.value is not None else "n/a"
    return "PASS" if check.passed else "FAIL"


def table(results: list[ScenarioResult], info: dict[str, Any]) -> str:
    """The plain-text table: every check with its value, target and verdict."""
    rows = [("#", "figure", "value", "target", "result")]
    for result in results:
        for check in result.checks:
            value = "-" if check.value is None else f"{check.value:g}{check.unit}"
            rows.append((result.number, check.name, value, check.target, _verdict(check)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        f"machine: {info['cpus']} CPU(s), {info['cpu_model']}, Python {info['python']}, "
        f"code {info['commit']}",
    ]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    for result in results:
        lines.extend(f"note ({result.number}): {note}" for note in result.notes)
    return "\n".join(lines)

"""Whether the disk under a directory has room left, for the readiness probe."""

from __future__ import annotations

import os
from pathlib import Path


def has_room(path: Path, at_least: int) -> bool:
    """Whether the disk under ``path`` has ``at_least`` bytes free for this user."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return True  # not there yet: nothing says the disk is full
    return stats.f_bavail * stats.f_frsize >= at_least

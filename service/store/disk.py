"""File writes that survive a crash (fsync) and turn a full disk into a clear 507."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio

from service.errors import StorageFull

# errno values that mean the disk (or the user's quota on it) has no room left.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
ResultT = TypeVar("ResultT")


@contextlib.contextmanager
def disk_full_as_storage_error(root: Path) -> Iterator[None]:
    """A write that finds no room on disk becomes a 507 naming the directory."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        raise StorageFull(
            f"The disk under the data directory {root} is full; nothing of this request was "
            "kept. "
            "Free space and try again."
        ) from exc


async def on_disk(root: Path, work: Callable[[], ResultT]) -> ResultT:
    """Run blocking file work off the event loop, a full disk raising StorageFull."""
    with disk_full_as_storage_error(root):
        return await anyio.to_thread.run_sync(work)


def fsync_directory(path: Path) -> None:
    """Make a rename or a new entry in ``path`` survive a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def has_room(path: Path, at_least: int) -> bool:
    """Whether the disk under ``path`` has ``at_least`` bytes free for this user."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return True  # not there yet: nothing says the disk is full
    return stats.f_bavail * stats.f_frsize >= at_least

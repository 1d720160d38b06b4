"""A webhook receiver on loopback, for tests: records every delivery, answers as told.

``WebhookReceiver`` runs a standard-library HTTP server in a thread. By default it
answers 200; ``answers`` queues the statuses of the next requests (a 3xx comes
with a ``Location`` to ``/redirected``); ``hang_next`` makes the next request stall
that long (or until the receiver stops), then drops it unanswered. It can be stopped and
started again on the same port, as a receiver that goes down and comes back.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One request as the receiver saw it, and the status it answered (None: none sent)."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None


class WebhookReceiver:
    """Records POSTs; answers each with the next queued status, or 200."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        # Every request as it arrives (status None), and each again once answered.
        self.received: list[Delivery] = []
        self.deliveries: list[Delivery] = []
        self.answers: list[int] = []
        self.hang_next: float = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/textbatch"

    def _next(self) -> tuple[int, float]:
        with self._lock:
            status = self.answers.pop(0) if self.answers else 200
            hang, self.hang_next = self.hang_next, 0.0
        return status, hang

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Delivery(time.time(), self.path, headers, body, None))
                status, hang = receiver._next()
                if hang:
                    # A stalled receiver: it drops the connection without an answer.
                    receiver._stopped.wait(hang)
                    self.close_connection = True
                    receiver._record(Delivery(time.time(), self.path, headers, body, None))
                    return
                answered: int | None = status
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("location", "/redirected")
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    answered = None  # the caller had gone
                receiver._record(Delivery(time.time(), self.path, headers, body, answered))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._stopped.clear()
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 60) -> list[Delivery]:
        """The deliveries once at least ``count`` were answered 2xx; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                done = [d for d in self.deliveries if d.status is not None and d.status < 300]
                if len(done) >= count:
                    return list(self.deliveries)
            time.sleep(0.05)
        raise AssertionError(f"{count} webhook deliveries did not arrive in {timeout:g} s")

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def unused_port() -> int:
    """A loopback port nothing listens on now: a receiver that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

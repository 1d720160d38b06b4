"""The HTTP/1.1 connection layer: httptools parsing with bounds on header size and on slow clients.

uvicorn's httptools protocol reads headers of any size (httptools joins a long
header value in memory, piece by piece) and waits for ever for headers or for
a body that trickles in, so one client without a key could hold connections,
memory and (for uploads) temp files open as long as it liked. This subclass
keeps httptools's speed and adds, per connection:

- a header size bound: the request line and headers, counted as they arrive,
  may come to ``max_header_bytes``; past that the answer is a 431 and the
  connection is closed;
- a header deadline: a request's headers must be complete ``header_timeout``
  seconds after the connection opened or the previous response ended (408);
- body deadlines: at most ``body_idle_timeout`` seconds between body bytes and
  ``body_timeout`` seconds for the whole body (408). The route reading the
  body sees the client disconnect, so it cleans up what it had begun.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.api.errors import error_body

# After refusing a request, what the client is still sending is read and dropped for
# this long before the socket closes: closing with unread data makes the kernel reset
# the connection, and the client could lose the answer explaining the refusal.
LINGER_SECONDS = 2.0
# Per header line on the wire: ": " and CRLF around the name and value.
HEADER_LINE_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The bounds each connection is held to (see the module docstring)."""

    max_header_bytes: int
    header_timeout: float
    body_idle_timeout: float
    body_timeout: float


def _refusal(status: int, code: str, message: str) -> bytes:
    """A complete ``connection: close`` response in the API's one error shape."""
    body = orjson.dumps(error_body("invalid_request_error", code, message))
    head = [
        STATUS_LINE[status],
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
        b"connection: close\r\n",
        b"\r\n",
    ]
    return b"".join(head) + body


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a request already answered."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body bounds; see the module docstring."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Between a request's start (or the previous one's end) and its headers' end.
        self._awaiting_headers = True
        # Bytes received while awaiting headers, and those the parser has handed over.
        self._raw_header_bytes = 0
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        # Between the headers' end and the message's end.
        self._in_body = False
        self._body_started = 0.0
        self._last_body = 0.0
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop what still arrives
        self._unset_keepalive_if_required()
        if self._awaiting_headers:
            self._raw_header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrade is served (websockets are off); the request was answered normally.
            return
        except httptools.HttpParserError:
            if self._refused:
                return
            message = "Invalid HTTP request received."
            self.logger.warning(message)
            self.send_400_response(message)
            return
        if self._awaiting_headers and self._raw_header_bytes > self.limits.max_header_bytes:
            self._refuse_headers()
        elif self._in_body and self._body_timer is None:
            self._arm_body_timer()

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_headers = True
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + HEADER_LINE_OVERHEAD
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._header_bytes > self.limits.max_header_bytes:
            self._refuse_headers()
            raise _Refused
        self._awaiting_headers = False
        self._cancel_header_timer()
        self._in_body = True
        self._body_started = self._last_body = self.loop.time()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        # A clock read, not a timer per chunk: the timer checks this when it fires.
        self._last_body = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._cancel_body_timer()
        self._awaiting_headers = True
        self._raw_header_bytes = 0
        self._header_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._awaiting_headers:
            # The next request's headers are due from now, whether or not any came yet.
            self._arm_header_timer()

    # -- refusals --------------------------------------------------------------------

    def _refuse_headers(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(
            _refusal(
                431,
                "request_headers_too_large",
                f"The request line and headers are larger than {limit} bytes, the limit.",
            )
        )

    def _refuse(self, response: bytes) -> None:
        """Answer, stop reading requests, and close once the client has had time to read it."""
        self._refused = True
        self._cancel_timers()
        if self.cycle is not None and not self.cycle.response_complete:
            # The route (if one runs) sees a disconnect and cleans up what it began.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        if self.transport.is_closing():
            return
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _timed_out(self, what: str) -> None:
        self.logger.info("closing a connection: %s", what)
        if self.cycle is not None and self.cycle.response_started:
            # Part of an answer is on its way; it cannot be replaced by a 408.
            self._refused = True
            self._cancel_timers()
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            self.transport.close()
            return
        self._refuse(_refusal(408, "request_timeout", f"{what}; the connection is closed."))

    # -- timers ----------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_deadline)

    def _header_deadline(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self._raw_header_bytes == 0:
            # Nothing of a request was sent: an idle connection, closed without a word.
            self._refused = True
            self.transport.close()
            return
        self._timed_out(
            f"The request headers did not arrive within {self.limits.header_timeout:g} s"
        )

    def _arm_body_timer(self) -> None:
        limits = self.limits
        deadline = min(
            self._last_body + limits.body_idle_timeout, self._body_started + limits.body_timeout
        )
        self._body_timer = self.loop.call_at(deadline, self._body_deadline)

    def _body_deadline(self) -> None:
        self._body_timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        limits = self.limits
        if self.flow.read_paused:
            # The route has not taken what arrived: the server is slow, not the client.
            self._last_body = now
            self._arm_body_timer()
            return
        if now >= self._body_started + limits.body_timeout:
            self._timed_out(f"The request body did not end within {limits.body_timeout:g} s")
        elif now >= self._last_body + limits.body_idle_timeout:
            self._timed_out(
                f"No byte of the request body arrived for {limits.body_idle_timeout:g} s"
            )
        else:
            self._arm_body_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to ``limits``."""
    return type("BoundHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})

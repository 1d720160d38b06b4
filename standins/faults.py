"""Which fault a stand-in upstream call gets: from directives in its text, or at random.

Directives written into any message content make that one request fail:
``[[fail:STATUS]]``, ``[[fail:STATUS:N]]``, ``[[retry-after:SECONDS]]``,
``[[badjson:N]]``, ``[[schema:N]]``, ``[[slow:SECONDS]]``, ``[[reset:N]]`` and
``[[timeout]]``. Counted directives (``:N``) fail the first N calls carrying the
same directive and text, then let calls through. Random faults come from a
seeded generator so a run can be repeated; random 429s carry a Retry-After when
the plan has one.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from dataclasses import dataclass, field

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

FAULTS = ("429", "500", "503", "reset", "timeout", "badjson", "schema", "slow")
_DIRECTIVE = re.compile(
    r"\[\[(?P<kind>fail|badjson|schema|reset|slow|retry-after|timeout)"
    r"(?::(?P<arg>[\d.]+))?(?::(?P<count>\d+))?\]\]"
)


@dataclass(frozen=True)
class Fault:
    """What to do to one call; the default does nothing to it."""

    slow: float = 0.0
    hang: bool = False
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    bad_json: bool = False
    wrong_schema: bool = False


class FaultPlan:
    """Decides each call's fault; safe to use from several threads."""

    def __init__(
        self,
        rates: dict[str, float] | None = None,
        *,
        seed: int = 0,
        slow_seconds: float = 1.0,
        rate_limit_retry_after: float | None = None,
    ) -> None:
        unknown = set(rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {FAULTS}")
        self.rates = dict(rates or {})
        self.slow_seconds = slow_seconds
        self.rate_limit_retry_after = rate_limit_retry_after
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, str], int] = {}

    def reset(self) -> None:
        with self._lock:
            self._counters.clear()

    def decide(self, text: str) -> Fault:
        directives = {m.group("kind"): m for m in _DIRECTIVE.finditer(text)}
        kind = self._random_kind()
        slow = directives.get("slow")
        delay = float(slow.group("arg") or 0) if slow else 0.0
        if kind == "slow":
            delay = max(delay, self.slow_seconds)
        if "timeout" in directives or kind == "timeout":
            return Fault(slow=delay, hang=True)
        retry_after = directives.get("retry-after")
        headers = {"Retry-After": retry_after.group("arg")} if retry_after else {}
        fail = directives.get("fail")
        if fail and self._still_failing(fail, text, "count"):
            return Fault(slow=delay, status=int(float(fail.group("arg") or 500)), headers=headers)
        if kind in ("429", "500", "503"):
            if kind == "429" and self.rate_limit_retry_after is not None and not headers:
                headers = {"Retry-After": f"{self.rate_limit_retry_after:g}"}
            return Fault(slow=delay, status=int(kind), headers=headers)
        if kind == "reset" or self._still_failing(directives.get("reset"), text):
            return Fault(slow=delay, drop=True)
        if kind == "badjson" or self._still_failing(directives.get("badjson"), text):
            return Fault(slow=delay, bad_json=True)
        if kind == "schema" or self._still_failing(directives.get("schema"), text):
            return Fault(slow=delay, wrong_schema=True)
        return Fault(slow=delay)

    def _still_failing(
        self, match: re.Match[str] | None, text: str, count_group: str = "arg"
    ) -> bool:
        """Whether a directive fails this call: always without a count, else the first N times."""
        if match is None:
            return False
        limit = match.group(count_group)
        if limit is None:
            return True
        key = (match.group(0), text)
        with self._lock:
            self._counters[key] = seen = self._counters.get(key, 0) + 1
        return seen <= int(float(limit))

    def _random_kind(self) -> str | None:
        if not self.rates:
            return None
        with self._lock:
            draw = self._random.random()
        for kind in FAULTS:
            draw -= self.rates.get(kind, 0.0)
            if draw < 0:
                return kind
        return None


class _DropConnection(Exception):
    """Raised after the response head so uvicorn closes the socket mid-answer."""


class DroppedConnection(Response):
    """A response that breaks off after its status line, as a reset connection does."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise _DropConnection


class _HideDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _DropConnection))


def hide_dropped_connections() -> None:
    """Keep uvicorn from logging a traceback for every connection dropped on purpose."""
    logging.getLogger("uvicorn.error").addFilter(_HIDE_DROPPED_CONNECTIONS)


_HIDE_DROPPED_CONNECTIONS = _HideDroppedConnections()

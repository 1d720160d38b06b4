"""Where and how a native batch client reaches one upstream: address, key, limits, timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NativeEndpoint:
    """One upstream's batch API as a dialect client needs it."""

    name: str
    # Ends in the API version (``…/v1``), as for chat calls.
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    max_lines: int = 50_000
    max_bytes: int = 200 * 1024 * 1024
    timeout: float = 60.0
    connect_timeout: float = 10.0

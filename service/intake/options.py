"""The batch-wide options of a submission (endpoint, completion window, metadata), checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from service.errors import InvalidRequest
from service.intake.validation import PASSTHROUGH_URLS

_WINDOW = re.compile(r"^([1-9][0-9]*)([smh])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
MAX_WINDOW_SECONDS = 7 * 24 * 3600


def window_seconds(window: str) -> int:
    """Seconds in a completion window like ``24h``; InvalidRequest when it is not one."""
    # Bounded before matching so a huge number never reaches int().
    match = _WINDOW.match(window) if isinstance(window, str) and len(window) <= 8 else None
    if match is None:
        raise InvalidRequest(
            "completion_window must be a duration such as '24h' (s, m or h).",
            param="completion_window",
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_WINDOW_SECONDS:
        raise InvalidRequest("completion_window may be at most 168h.", param="completion_window")
    return seconds


# The hosted API's bounds for a batch's output_expires_after and a file's expires_after.
MIN_EXPIRES_AFTER_SECONDS = 3600
MAX_EXPIRES_AFTER_SECONDS = 30 * 24 * 3600


def expires_after_seconds(anchor: object, seconds: object, param: str) -> int:
    """The seconds of an ``{"anchor": "created_at", "seconds": n}`` policy, checked."""
    if anchor != "created_at":
        raise InvalidRequest(f"{param}.anchor must be 'created_at'.", param=f"{param}.anchor")
    if (
        not isinstance(seconds, int)
        or isinstance(seconds, bool)
        or not MIN_EXPIRES_AFTER_SECONDS <= seconds <= MAX_EXPIRES_AFTER_SECONDS
    ):
        raise InvalidRequest(
            f"{param}.seconds must be a whole number from {MIN_EXPIRES_AFTER_SECONDS} "
            f"(1 hour) to {MAX_EXPIRES_AFTER_SECONDS} (30 days).",
            param=f"{param}.seconds",
        )
    return seconds


def output_expires_after(value: object) -> int | None:
    """A batch's ``output_expires_after`` object in seconds, or None when not given."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"anchor", "seconds"}:
        raise InvalidRequest(
            'output_expires_after must be {"anchor": "created_at", "seconds": n}.',
            param="output_expires_after",
        )
    return expires_after_seconds(value.get("anchor"), value.get("seconds"), "output_expires_after")


def check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str) or endpoint not in PASSTHROUGH_URLS:
        allowed = ", ".join(f"'{url}'" for url in PASSTHROUGH_URLS)
        raise InvalidRequest(f"endpoint must be one of {allowed}.", param="endpoint")
    return str(endpoint)


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """What a client chose for its batch besides the lines."""

    endpoint: str | None = None
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    input_file_id: str | None = None
    # The x-textbatch-provider header's upstream, and the caller's key for it (sealed
    # before it is stored; never in a repr).
    provider: str | None = None
    provider_key: str | None = field(default=None, repr=False)
    # Set by a retry (never by a client): the batch whose failed lines are run again.
    retry_of: str | None = None
    # ``direct`` or ``native``, as the client asked; None: each line's upstream's default.
    lane: str | None = None
    # Seconds the batch is kept once it ends, when the client chose (output_expires_after).
    retention: int | None = None


LANES = ("direct", "native")


def check_lane(lane: object) -> str | None:
    """The lane a client asked for, or None when it asked for none."""
    if lane is None:
        return None
    if not isinstance(lane, str) or lane not in LANES:
        raise InvalidRequest("lane must be 'direct' or 'native'.", param="lane")
    return lane


def validate_metadata(metadata: Any) -> dict[str, str] | None:
    """Metadata as the hosted API allows it: up to 16 string pairs, keys ≤ 64, values ≤ 512."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata must be an object of string values.", param="metadata")
    if len(metadata) > 16:
        raise InvalidRequest("metadata may have at most 16 keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64:
            raise InvalidRequest(
                "metadata keys may be at most 64 characters.", param=f"metadata.{key[:64]}"
            )
        if not isinstance(value, str):
            raise InvalidRequest("metadata values must be strings.", param=f"metadata.{key}")
        if len(value) > 512:
            raise InvalidRequest(
                "metadata values may be at most 512 characters.", param=f"metadata.{key}"
            )
    return dict(metadata)

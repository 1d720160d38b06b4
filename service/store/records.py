"""Plain data the store reads and writes: batch records, line results, chunk states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.store.lifecycle import BatchStatus, LineOutcome

TIMESTAMP_FIELDS = (
    "created_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expires_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    # When the batch's data is removed: set in the step that ends it.
    "data_expires_at",
)
COUNTER_FIELDS = (
    "total",
    "completed",
    "failed",
    "cancelled",
    "expired",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
)
OPTIONAL_TEXT_FIELDS = ("input_file_id", "output_file_id", "error_file_id")


@dataclass(slots=True)
class BatchRecord:
    """A batch as stored in its Redis hash."""

    id: str
    owner: str
    status: BatchStatus
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    timestamps: dict[str, int | None]
    counters: dict[str, int]
    files: dict[str, str | None] = field(default_factory=dict)
    errors: list[dict[str, Any]] | None = None
    # The batch whose failed lines this one retries, and the batches that retried this one.
    retry_of: str | None = None
    retried_by: list[str] = field(default_factory=list)

    # ``direct`` or ``native``; ``lane_chosen``: the client asked for it (else the default).
    lane: str = "direct"
    lane_chosen: bool = False
    # The client's ``output_expires_after.seconds``, if it gave one.
    output_expires_after: int | None = None
    # The x-textbatch-provider header's upstream, and whether a caller's key came with it.
    requested_provider: str | None = None
    provider_key: bool = False

    @property
    def finished_lines(self) -> int:
        """Lines that have a result: succeeded, failed, cancelled or expired."""
        c = self.counters
        return c["completed"] + c["failed"] + c["cancelled"] + c["expired"]

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes], retried_by: Sequence[bytes] = ()) -> BatchRecord:
        text = {key.decode(): value.decode() for key, value in raw.items()}
        metadata_raw = text.get("metadata", "null")
        return cls(
            id=text["id"],
            owner=text["owner"],
            status=BatchStatus(text["status"]),
            endpoint=text.get("endpoint", "/v1/chat/completions"),
            completion_window=text.get("completion_window", "24h"),
            metadata=orjson.loads(metadata_raw),
            timestamps={
                name: int(text[name]) if text.get(name) else None for name in TIMESTAMP_FIELDS
            },
            counters={name: int(text.get(name, "0")) for name in COUNTER_FIELDS},
            files={name: text.get(name) or None for name in OPTIONAL_TEXT_FIELDS},
            errors=orjson.loads(text["errors"]) if text.get("errors") else None,
            retry_of=text.get("retry_of") or None,
            retried_by=[item.decode() for item in retried_by],
            lane=text.get("lane", "direct"),
            lane_chosen=text.get("lane_chosen") == "1",
            requested_provider=text.get("requested_provider") or None,
            provider_key=text.get("provider_key") == "1",
            output_expires_after=int(text["output_expires_after"])
            if text.get("output_expires_after")
            else None,
        )


@dataclass(frozen=True, slots=True)
class NewBatch:
    """What the API knows about a batch when it commits it."""

    id: str
    owner: str
    total: int
    created_at: int
    expires_at: int
    endpoint: str = "/v1/chat/completions"
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    input_file_id: str | None = None
    # Lines per stored page of the batch's input.
    page_lines: int = 1
    # The upstream the x-textbatch-provider header chose, and whether the caller sent a key
    # of its own (stored apart, sealed: ``keys.batch_provider_key``).
    provider: str | None = None
    provider_key: bool = False
    # Set only by a retry: the batch whose failed lines this one runs again.
    retry_of: str | None = None
    lane: str = "direct"
    lane_chosen: bool = False
    # Seconds the batch and its data are kept once it ends, and the client's own choice.
    retention: int = 30 * 24 * 3600
    output_expires_after: int | None = None

    def as_hash(self) -> dict[str, str | int]:
        fields: dict[str, str | int] = {
            "id": self.id,
            "owner": self.owner,
            "status": BatchStatus.IN_PROGRESS.value,
            "endpoint": self.endpoint,
            "completion_window": self.completion_window,
            "metadata": orjson.dumps(self.metadata).decode(),
            "created_at": self.created_at,
            "in_progress_at": self.created_at,
            "expires_at": self.expires_at,
            "total": self.total,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "expired": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "page_lines": self.page_lines,
            "lane": self.lane,
            "lane_chosen": int(self.lane_chosen),
            "retention": self.retention,
        }
        if self.output_expires_after is not None:
            fields["output_expires_after"] = self.output_expires_after
        if self.input_file_id:
            fields["input_file_id"] = self.input_file_id
        if self.provider:
            fields["requested_provider"] = self.provider
        if self.provider_key:
            fields["provider_key"] = 1
        if self.retry_of:
            fields["retry_of"] = self.retry_of
        return fields

    def as_failed_hash(self, errors: list[dict[str, Any]]) -> dict[str, str | int]:
        """The hash of a batch whose input was rejected: failed at once, with no lines."""
        fields = self.as_hash()
        fields.update(
            status=BatchStatus.FAILED.value,
            total=0,
            failed_at=self.created_at,
            data_expires_at=self.created_at + self.retention,
            errors=orjson.dumps(errors).decode(),
        )
        del fields["in_progress_at"]
        return fields


@dataclass(frozen=True, slots=True)
class LineResult:
    """One finished line, ready to be recorded once and streamed back in order."""

    index: int
    output_line: bytes
    outcome: LineOutcome
    input_tokens: int = 0
    output_tokens: int = 0
    priced_model: str = ""
    # Input tokens the upstream served from its prompt cache (part of ``input_tokens``).
    cached_tokens: int = 0

    @property
    def succeeded(self) -> bool:
        return self.outcome is LineOutcome.SUCCEEDED


@dataclass(slots=True)
class ChunkState:
    """What a worker needs to run a range of lines: the batch's state and the lines still to do."""

    status: BatchStatus | None
    expires_at: int | None
    owner: str = ""
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The provider header's choice; ``provider_key``: a caller's key was given, and
    # ``sealed_provider_key`` is it sealed (None once the batch ended and it was deleted).
    provider: str | None = None
    provider_key: bool = False
    sealed_provider_key: bytes | None = field(default=None, repr=False)
    lane: str = "direct"
    lane_chosen: bool = False
    completion_window: str = "24h"
    total: int = 0

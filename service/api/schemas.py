"""The public shapes of API objects, split by role."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.records import BatchRecord


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class BatchPublic(BaseModel):
    """A batch as the hosted batch API shows it."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: None = None
    input_file_id: str | None = None
    completion_window: str
    status: str
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    usage: BatchUsage
    metadata: dict[str, str] | None

    @classmethod
    def from_record(cls, record: BatchRecord) -> BatchPublic:
        stamps = record.timestamps
        counters = record.counters
        return cls(
            id=record.id,
            endpoint=record.endpoint,
            completion_window=record.completion_window,
            status=record.status.value,
            created_at=stamps["created_at"] or 0,
            in_progress_at=stamps["in_progress_at"],
            expires_at=stamps["expires_at"],
            finalizing_at=stamps["finalizing_at"],
            completed_at=stamps["completed_at"],
            failed_at=stamps["failed_at"],
            expired_at=stamps["expired_at"],
            cancelling_at=stamps["cancelling_at"],
            cancelled_at=stamps["cancelled_at"],
            request_counts=RequestCounts(
                total=counters["total"], completed=counters["completed"], failed=counters["failed"]
            ),
            usage=BatchUsage(
                input_tokens=counters["input_tokens"],
                output_tokens=counters["output_tokens"],
                total_tokens=counters["input_tokens"] + counters["output_tokens"],
            ),
            metadata=record.metadata,
        )


class BatchRequestsCreate(BaseModel):
    """The JSON submission: inline request lines and optional metadata."""

    requests: list[object]
    metadata: dict[str, str] | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: str
    llm_backend: str

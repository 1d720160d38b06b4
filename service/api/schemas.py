"""The public shapes of API objects, split by role."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, WithJsonSchema

from service.api.batch_progress import BatchProgress, batch_progress
from service.llm.pricing import CostSummary
from service.store.records import BatchRecord


class RequestCounts(BaseModel):
    """Lines by how they ended; once a batch has ended the four add up to ``total``.

    ``failed`` is lines that ran and failed; lines never run because the batch was
    cancelled or its window ended are ``cancelled`` and ``expired``.
    """

    total: int
    completed: int
    failed: int
    cancelled: int = 0
    expired: int = 0


class BatchUsage(BaseModel):
    """Tokens summed over every line, and their cost at the batch discount.

    ``input_tokens_details.cached_tokens``: input tokens upstreams served from their
    prompt cache, priced at the price table's ``cached_input`` rate where it has one.

    A cost is null when a model used is missing from the price table; those
    models are listed in ``unpriced_models``.
    """

    input_tokens: int
    input_tokens_details: dict[str, int] = {"cached_tokens": 0}
    output_tokens: int
    output_tokens_details: dict[str, int] = {"reasoning_tokens": 0}
    total_tokens: int
    input_cost: float | None
    output_cost: float | None
    total_cost: float | None
    unpriced_models: list[str]


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchError]


class ProviderBatch(BaseModel):
    """One upstream batch of a native-lane batch, as last seen."""

    provider: str
    id: str
    status: str
    request_counts: dict[str, int]


EXPIRES_AFTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "anchor": {"type": "string", "enum": ["created_at"]},
        "seconds": {"type": "integer", "minimum": 3600, "maximum": 30 * 24 * 3600},
    },
    "required": ["anchor", "seconds"],
    "additionalProperties": False,
}


class ExpiresAfter(BaseModel):
    """A retention policy in the hosted API's shape: kept this long after ``anchor``."""

    anchor: Literal["created_at"] = "created_at"
    seconds: int


class BatchPublic(BaseModel):
    """A batch as the hosted batch API shows it."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
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
    # Rate and estimated completion while running (see BatchProgress); null otherwise.
    progress: BatchProgress | None = None
    usage: BatchUsage
    metadata: dict[str, str] | None
    # Batches made by ``POST /v1/batches/{id}/retry`` from this one, oldest first.
    retried_by: list[str] = []
    # ``direct`` (our own calls) or ``native`` (the upstreams' own batch APIs).
    lane: str = "direct"
    # Native lane: the upstream (or ``mixed``), its batch when there is one, and all of them.
    provider: str | None = None
    provider_batch_id: str | None = None
    provider_batches: list[ProviderBatch] | None = None
    # Retention: the client's policy, if any, and when the batch and its data are removed
    # (set once it has ended; ``expires_at`` is the completion window's end).
    output_expires_after: ExpiresAfter | None = None
    data_expires_at: int | None = None

    @classmethod
    def from_record(
        cls,
        record: BatchRecord,
        cost: CostSummary,
        provider_batches: list[dict[str, Any]] | None = None,
    ) -> BatchPublic:
        stamps = record.timestamps
        counters = record.counters
        errors = None
        if record.errors is not None:
            errors = BatchErrors(data=[BatchError.model_validate(e) for e in record.errors])
        return cls(
            id=record.id,
            endpoint=record.endpoint,
            errors=errors,
            input_file_id=record.files.get("input_file_id"),
            output_file_id=record.files.get("output_file_id"),
            error_file_id=record.files.get("error_file_id"),
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
                total=counters["total"],
                completed=counters["completed"],
                failed=counters["failed"],
                cancelled=counters["cancelled"],
                expired=counters["expired"],
            ),
            progress=batch_progress(record),
            usage=BatchUsage(
                input_tokens=counters["input_tokens"],
                input_tokens_details={"cached_tokens": counters["cached_tokens"]},
                output_tokens=counters["output_tokens"],
                total_tokens=counters["input_tokens"] + counters["output_tokens"],
                input_cost=cost.input_cost,
                output_cost=cost.output_cost,
                total_cost=cost.total_cost,
                unpriced_models=cost.unpriced_models,
            ),
            metadata=record.metadata,
            retried_by=record.retried_by,
            lane=record.lane,
            **_provider_fields(provider_batches),
            output_expires_after=ExpiresAfter(seconds=record.output_expires_after)
            if record.output_expires_after is not None
            else None,
            data_expires_at=stamps["data_expires_at"],
        )


def _provider_fields(entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not entries:
        return {}
    providers = {entry["provider"] for entry in entries}
    return {
        "provider": providers.pop() if len(providers) == 1 else "mixed",
        "provider_batch_id": entries[0]["id"] if len(entries) == 1 else None,
        "provider_batches": [ProviderBatch.model_validate(entry) for entry in entries],
    }


class BatchCreate(BaseModel):
    """The JSON submission: an uploaded ``input_file_id``, or inline ``requests``."""

    input_file_id: str | None = None
    requests: list[object] | None = None
    endpoint: str | None = None
    completion_window: str | None = None
    metadata: dict[str, str] | None = None
    lane: Literal["direct", "native"] | None = None
    # Inline, not a $ref: this schema is copied into the route's request body, where a
    # reference to $defs would point nowhere.
    output_expires_after: Annotated[
        ExpiresAfter | None, WithJsonSchema({"anyOf": [EXPIRES_AFTER_SCHEMA, {"type": "null"}]})
    ] = None


class BatchDeleted(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    deleted: bool


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchPublic]
    first_id: str | None
    last_id: str | None
    has_more: bool


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: str
    llm_backend: str
    # "ok", or "full" when the data directory's disk (or Redis's) has no room left.
    storage: str = "ok"
    # "ok", "unreachable" when the default upstream does not answer, "offline" without one.
    upstream: str = "ok"
    message: str | None = None


class LineFaultPublic(BaseModel):
    """One faulty input line named in an ``invalid_batch`` error."""

    line: int
    custom_id: str | None
    param: str | None
    code: str
    message: str


class ErrorDetail(BaseModel):
    type: str
    code: str
    message: str
    param: str | None
    line: int | None
    # Only in an invalid_batch error: the faulty lines, and how many more were not listed.
    lines: list[LineFaultPublic] | None = None
    more_lines: int | None = None


class ErrorResponse(BaseModel):
    """Every error answer has this one shape."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    "4XX": {"model": ErrorResponse, "description": "The request was refused; the error says why."},
    "5XX": {"model": ErrorResponse, "description": "The service, its Redis or an upstream failed."},
}

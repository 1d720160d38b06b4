"""Every error textbatch raises on purpose, as one small tree.

    TextbatchError                      base; carries code, HTTP status, message
    ├── InvalidRequest                  400 invalid_request_error
    │   ├── BatchRejected               400, lists every faulty line
    │   └── WebhookUrlRefused           400 a webhook URL that may not be called
    ├── PayloadTooLarge                 413 over a size or count limit
    ├── UnsupportedMediaType            415 a content type the route does not read
    ├── AuthenticationFailed            401 missing or unknown key
    ├── NotFound                        404 unknown, or another key's
    ├── Conflict                        409 e.g. batch_not_finished
    ├── RouterUnavailable               503 Redis cannot take the work
    ├── FileStoreUnavailable            503 the S3 file store fails or is away
    ├── StorageFull                     507 the data directory's disk is full
    └── LLMError                        502 an upstream call failed for good
        ├── UpstreamRateLimited         429s until the attempts ran out
        ├── UpstreamTimeout             no answer in time
        ├── UpstreamFailed              5xx, connection reset, refused
        ├── UpstreamRejected            a 4xx other than 429, or a 3xx: retrying will not help
        │   └── ContextLengthExceeded   the prompt is over the model's context window
        ├── UpstreamResponseTooLarge    the answer is over TEXTBATCH_LLM_MAX_RESPONSE_BYTES
        ├── ModelRefused                the model declined (``message.refusal``)
        └── InvalidModelOutput          the answer is not JSON or breaks the task schema
            └── OutputTruncated         the answer was cut off at the output budget

Deep code raises these; ``service.api.errors`` alone turns them into HTTP
responses. Inside a batch an ``LLMError`` becomes that line's ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LineFault:
    """One reason one input line was rejected."""

    line: int
    param: str | None
    message: str
    code: str = "invalid_line"
    custom_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "custom_id": self.custom_id,
            "param": self.param,
            "code": self.code,
            "message": self.message,
        }


class TextbatchError(Exception):
    """Base of every deliberate textbatch error."""

    status_code = 500
    error_type = "server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.line = line


class InvalidRequest(TextbatchError):
    """The request is malformed or breaks a rule of the API."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class BatchRejected(InvalidRequest):
    """A batch input had faulty lines; nothing of it was stored."""

    code = "invalid_batch"

    def __init__(self, faults: list[LineFault], more: int = 0) -> None:
        first = faults[0] if faults else None
        shown = len(faults)
        summary = f"{shown + more} line fault(s) in the batch input"
        if more:
            summary += f"; the first {shown} are listed, {more} more not shown"
        super().__init__(
            summary,
            param=first.param if first else None,
            line=first.line if first else None,
        )
        self.faults = faults
        self.more = more


class WebhookUrlRefused(InvalidRequest):
    """A webhook URL that is not http(s), does not resolve, or reaches a non-public address."""

    code = "webhook_url_not_allowed"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, param="url")


class PayloadTooLarge(TextbatchError):
    """The input is over a configured size or count limit."""

    status_code = 413
    error_type = "invalid_request_error"
    code = "payload_too_large"


class UnsupportedMediaType(TextbatchError):
    """The body's content type is not one the route reads."""

    status_code = 415
    error_type = "invalid_request_error"
    code = "unsupported_media_type"


class AuthenticationFailed(TextbatchError):
    """No API key, or one the service does not know."""

    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class NotFound(TextbatchError):
    """The object does not exist, or belongs to another key."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "not_found"


class Conflict(TextbatchError):
    """The object is not in a state that allows the request."""

    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"


class RouterUnavailable(TextbatchError):
    """Redis is down or not configured, so no work can be queued or read."""

    status_code = 503
    error_type = "server_error"
    code = "batch_router_unavailable"


class FileStoreUnavailable(TextbatchError):
    """The object store holding uploaded files failed or cannot be reached."""

    status_code = 503
    error_type = "server_error"
    code = "file_store_unavailable"


class StorageFull(TextbatchError):
    """The disk under the data directory has no room; nothing was half-written."""

    status_code = 507
    error_type = "server_error"
    code = "insufficient_storage"


class LLMError(TextbatchError):
    """An upstream LLM call failed after every attempt allowed."""

    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        attempts: int = 1,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        # Tokens billed by the calls that led to this failure (a refusal, an unusable
        # answer): a failed line's usage still counts every call the upstream billed.
        self.prompt_tokens = 0
        self.completion_tokens = 0


class UpstreamRateLimited(LLMError):
    """The upstream kept answering 429."""

    code = "upstream_rate_limited"
    retryable = True


class UpstreamTimeout(LLMError):
    """The upstream did not answer within the timeout."""

    code = "upstream_timeout"
    retryable = True


class UpstreamFailed(LLMError):
    """The upstream answered 5xx or the connection failed."""

    code = "upstream_error"
    retryable = True


class UpstreamRejected(LLMError):
    """The upstream refused the request with a 4xx other than 429."""

    code = "upstream_rejected"


class InvalidModelOutput(LLMError):
    """The model's answer is not JSON, or not JSON of the task's schema."""

    code = "invalid_model_output"


class UpstreamResponseTooLarge(LLMError):
    """The upstream's answer was larger than ``TEXTBATCH_LLM_MAX_RESPONSE_BYTES``."""

    code = "upstream_response_too_large"


class ModelRefused(LLMError):
    """The model declined to answer (``message.refusal``); asking again will not help."""

    code = "model_refused"


class OutputTruncated(InvalidModelOutput):
    """The answer was cut off at the output budget, also after a re-ask with a larger one."""

    code = "output_truncated"


class ContextLengthExceeded(UpstreamRejected):
    """The upstream says the prompt does not fit the model's context window."""

    code = "context_length_exceeded"


class NativeBatchApiError(LLMError):
    """An upstream's batch API (files, batches) refused or failed a call."""

    code = "upstream_batch_api_error"

    @property
    def transient(self) -> bool:
        """Worth trying again later: no answer, a 5xx or a 429."""
        status = self.upstream_status
        return status is None or status == 429 or status >= 500


class UpstreamBatchFailed(LLMError):
    """The upstream batch holding the line failed as a whole before the line ran."""

    code = "upstream_batch_failed"


class UpstreamBatchExpired(LLMError):
    """The upstream batch holding the line ran out of its window before the line ran."""

    code = "upstream_batch_expired"

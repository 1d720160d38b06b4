"""Every Redis key textbatch uses, built in one place and namespaced under ``textbatch:``."""

from __future__ import annotations

PREFIX = "textbatch"


def batch(batch_id: str) -> str:
    """Hash: the batch's metadata, status, timestamps and counters."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_lines(batch_id: str) -> str:
    """List: the batch's validated input lines in pages (see ``page_lines``), in order."""
    return f"{PREFIX}:batch:{batch_id}:lines"


def batch_results(batch_id: str) -> str:
    """Hash: line index -> the finished output line; HSETNX makes it write-once."""
    return f"{PREFIX}:batch:{batch_id}:results"


def batch_retries(batch_id: str) -> str:
    """List: ids of the batches made by retrying this batch's failed lines, oldest first."""
    return f"{PREFIX}:batch:{batch_id}:retries"


def staging_lines(upload_id: str) -> str:
    """List: pages of a submission's lines while it is validated; expires if the API dies."""
    return f"{PREFIX}:staging:{upload_id}"


def owner_batches(owner: str) -> str:
    """Sorted set: an API key's batch ids scored by creation order."""
    return f"{PREFIX}:owner:{owner}:batches"


def undispatched() -> str:
    """Sorted set: batches stored but whose chunks may not all be queued yet."""
    return f"{PREFIX}:undispatched"


def batch_model_usage(batch_id: str) -> str:
    """Hash: ``<model>:in`` / ``<model>:out`` -> tokens, for pricing per model."""
    return f"{PREFIX}:batch:{batch_id}:usage"


def batch_provider_key(batch_id: str) -> str:
    """String: the caller's provider key, Fernet-sealed; deleted as the batch ends, and
    expiring shortly after the batch's window as a backstop."""
    return f"{PREFIX}:batch:{batch_id}:provider_key"


def batch_failed_lines(batch_id: str) -> str:
    """Bitmap: bit ``index`` is set when that line did not succeed (it goes to the error file)."""
    return f"{PREFIX}:batch:{batch_id}:failed"


def file(file_id: str) -> str:
    """Hash: a file's metadata (owner, bytes, filename, purpose, where its content lives)."""
    return f"{PREFIX}:file:{file_id}"


def owner_files(owner: str) -> str:
    """Sorted set: an API key's file ids scored by creation time."""
    return f"{PREFIX}:owner:{owner}:files"


def idempotency(owner: str, key_digest: str) -> str:
    """String: the batch a client's Idempotency-Key created, with the request's digest."""
    return f"{PREFIX}:owner:{owner}:idempotency:{key_digest}"


def owner_prompts(owner: str) -> str:
    """Sorted set: an API key's prompt slugs, all scored 0 so they list in slug order."""
    return f"{PREFIX}:owner:{owner}:prompts"


def prompt(owner: str, slug: str) -> str:
    """Hash: one prompt of an API key, its summary fields and one ``v:<n>`` field per version."""
    return f"{PREFIX}:owner:{owner}:prompt:{slug}"


def active_batches() -> str:
    """Sorted set: running batches scored by the time of their last recorded result."""
    return f"{PREFIX}:active"


def batch_status_counts() -> str:
    """Hash: status -> how many batches hold it; every move between statuses keeps it."""
    return f"{PREFIX}:batch_status_counts"


def sweeper_lock() -> str:
    """String: held by the one worker sweeping for stalled or unqueued batches."""
    return f"{PREFIX}:sweeper:lock"


def capacity_holders(upstream: str) -> str:
    """Sorted set: calls in flight to an upstream, across all processes, by lease expiry."""
    return f"{PREFIX}:capacity:{upstream}:holders"


def capacity_waiters(upstream: str) -> str:
    """Sorted set: calls waiting for that upstream, realtime ones first, then by arrival."""
    return f"{PREFIX}:capacity:{upstream}:waiters"


def capacity_grants(upstream: str, process_id: str) -> str:
    """List: the waiters of one process that have just been given a slot."""
    return f"{PREFIX}:capacity:{upstream}:grants:{process_id}"


def durability_mark() -> str:
    """Counter: written before each WAITAOF so the wait covers every earlier write."""
    return f"{PREFIX}:durability:mark"


def webhook(webhook_id: str) -> str:
    """Hash: one webhook (owner, url, events, signing secret, status, delivery summary)."""
    return f"{PREFIX}:webhook:{webhook_id}"


def owner_webhooks(owner: str) -> str:
    """Sorted set: an API key's webhook ids by creation time; absent when it has none."""
    return f"{PREFIX}:owner:{owner}:webhooks"


def webhook_outbox() -> str:
    """Sorted set: ``<batch id> <event type>`` scored by when the batch ended.

    Written by the same script or transaction that gives a batch its final status
    (only when its key has a webhook), removed once fanned out into deliveries.
    """
    return f"{PREFIX}:webhooks:outbox"


def webhook_deliveries() -> str:
    """Sorted set: delivery ids (the ``webhook-id`` sent) scored by when each is next due.

    A worker claims a due delivery by moving its score past a lease; one killed
    mid-delivery leaves it due again when the lease ends. Removed when it ends.
    """
    return f"{PREFIX}:webhooks:deliveries"


def webhook_delivery(delivery_id: str) -> str:
    """Hash: one delivery's batch, event, webhook, attempts, claim and last outcome.

    Kept a while after the delivery ends (``DELIVERY_RECORD_SECONDS``) as its record.
    """
    return f"{PREFIX}:webhooks:delivery:{delivery_id}"


def native_plan(batch_id: str) -> str:
    """String: JSON list of a native batch's upstream groups (provider, line indices); set once."""
    return f"{PREFIX}:batch:{batch_id}:native:plan"


def native_batches(batch_id: str) -> str:
    """Hash: group number -> JSON of its upstream batch (provider, id, status, request_counts).

    Written once the upstream batch exists and before it is polled, so a resumed
    worker polls that batch and never creates a second one for the same lines.
    """
    return f"{PREFIX}:batch:{batch_id}:native:batches"


def native_driver(batch_id: str) -> str:
    """String with a TTL: held by the one worker driving a native batch's upstream batches."""
    return f"{PREFIX}:batch:{batch_id}:native:driver"


def file_content(file_id: str) -> str:
    """List: an uploaded file's bytes in chunks of ``CONTENT_CHUNK_BYTES``, in order.

    Expires while the upload is still arriving (an API that dies mid-upload leaves
    nothing for long); made persistent in the step that stores the file's metadata.
    """
    return f"{PREFIX}:file:{file_id}:content"


def file_batches(file_id: str) -> str:
    """Set: batches made from an uploaded file; the file is kept while one of them runs."""
    return f"{PREFIX}:file:{file_id}:batches"


def retention_schedule() -> str:
    """Sorted set: batch and file ids scored by when their data is to be removed.

    A batch is added in the step that ends it, a file in the step that stores it; an id
    leaves only once everything under it is gone, so a reaper that dies resumes.
    """
    return f"{PREFIX}:retention:schedule"


def reaper_lock() -> str:
    """String: held by the one worker removing expired batches and files."""
    return f"{PREFIX}:reaper:lock"

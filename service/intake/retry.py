"""Retrying a finished batch: its failed, expired and cancelled lines, staged as a new batch.

The lines are the original's stored lines, byte for byte (same custom_ids, urls
and bodies), read from the failed-lines bitmap a slice at a time and staged in
pages as any submission is; ``submit`` then commits and queues them, so a retry
is as durable and idempotent as any batch.
"""

from __future__ import annotations

from service.errors import Conflict, InvalidRequest
from service.ids import new_id
from service.intake.idempotency import RequestDigest
from service.intake.options import BatchOptions
from service.intake.reading import PAGE_LINES, WRITE_PAGES, StagedSubmission
from service.intake.submit import Prepared
from service.llm.routing import NO_CHOICE, ProviderChoice
from service.store.batches import BatchStore
from service.store.records import BatchRecord
from service.store.results import ResultStore

# What a retry adds to the original's metadata: the batch it retries.
RETRY_OF = "retry_of"


def retry_options(original: BatchRecord, choice: ProviderChoice = NO_CHOICE) -> BatchOptions:
    """The original's endpoint, window, metadata, provider and lane, with ``retry_of`` naming it.

    The lines go where the original's went unless the retry's provider headers say
    otherwise. A caller's own key was deleted when the original ended, so a batch that
    ran with one is retried only when the key is sent again.
    """
    if original.provider_key and choice.api_key is None:
        raise InvalidRequest(
            f"Batch '{original.id}' ran with a provider key of your own, which is not kept "
            "after a batch ends: send x-textbatch-provider and x-textbatch-provider-key "
            "again to retry it.",
            code="provider_key_required",
            param="x-textbatch-provider-key",
        )
    return BatchOptions(
        endpoint=original.endpoint if original.endpoint != "mixed" else None,
        completion_window=original.completion_window,
        metadata={**(original.metadata or {}), RETRY_OF: original.id},
        retry_of=original.id,
        provider=choice.provider or original.requested_provider,
        provider_key=choice.api_key,
        lane=original.lane if original.lane_chosen else None,
    )


async def prepare_retry(
    store: BatchStore,
    results: ResultStore,
    original: BatchRecord,
    codes: frozenset[str] | None,
    *,
    keyed: bool = True,
    choice: ProviderChoice = NO_CHOICE,
) -> Prepared:
    """Stage the lines of ``original`` that did not succeed (only ``codes``, when given)."""
    if not original.status.is_final:
        raise Conflict(
            f"Batch '{original.id}' is {original.status.value}; only a finished batch can be "
            "retried (cancel it first to retry what it has not done).",
            code="batch_not_finished",
        )
    options = retry_options(original, choice)
    provider = [f"provider={choice.provider}"] if choice.provider is not None else []
    digest = RequestDigest("retry", original.id, *sorted(codes or ()), *provider, enabled=keyed)
    upload_id = new_id("upload")
    total = 0
    page: list[bytes] = []
    pages: list[bytes] = []
    try:
        async for lines in results.unsucceeded_lines(
            original.id, original.counters["total"], codes
        ):
            total += len(lines)
            page += lines
            while len(page) >= PAGE_LINES:
                pages.append(b"\n".join(page[:PAGE_LINES]))
                del page[:PAGE_LINES]
            if len(pages) >= WRITE_PAGES:
                await store.stage_pages(upload_id, pages)
                pages = []
        if page:
            pages.append(b"\n".join(page))
        await store.stage_pages(upload_id, pages)
    except BaseException:
        await store.discard_staging(upload_id)
        raise
    if total == 0:
        chosen = f" with code {', '.join(sorted(codes))}" if codes else ""
        raise Conflict(
            f"Batch '{original.id}' has no failed, expired or cancelled lines{chosen} to retry.",
            code="nothing_to_retry",
            param="codes" if codes else None,
        )
    staged = StagedSubmission(upload_id=upload_id, total=total, page_lines=PAGE_LINES)
    return Prepared(options, digest.hexdigest(), staged=staged)

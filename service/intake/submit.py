"""The one way a submission becomes a batch: its idempotency key honoured, then committed.

Every submit route reads its body into a ``Prepared`` and hands it to ``submit``.
With an ``Idempotency-Key`` a retry gets the batch the first request made, and the
same key with a different request is a 409.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.errors import Conflict, NotFound, TextbatchError
from service.ids import new_batch_id
from service.intake.commit import Submitter
from service.intake.idempotency import Claim, IdempotencyStore
from service.intake.idempotency import conflict as idempotency_conflict
from service.intake.options import BatchOptions
from service.intake.reading import StagedSubmission
from service.store.batches import BatchStore
from service.store.records import BatchRecord


@dataclass(slots=True)
class Prepared:
    """A submission read and validated: staged lines, or (file flow) the reason it failed."""

    options: BatchOptions
    digest: str
    staged: StagedSubmission | None = None
    rejection: TextbatchError | None = None


async def _existing_batch(
    store: BatchStore, owner: str, claim: Claim, digest: str, key: str
) -> BatchRecord | None:
    """The batch an earlier request with this key made, or None if that claim is stale."""
    if claim.digest != digest:
        raise idempotency_conflict(key)
    # The first request may still be committing its batch: give it a moment to appear.
    for _ in range(50):
        try:
            return await store.get_batch(claim.batch_id, owner)
        except NotFound:
            await asyncio.sleep(0.1)
    return None


async def _discard(store: BatchStore, prepared: Prepared) -> None:
    if prepared.staged is not None:
        await store.discard_staging(prepared.staged.upload_id)


async def _earlier_batch(
    idempotency: IdempotencyStore,
    store: BatchStore,
    owner: str,
    key: str,
    earlier: Claim,
    prepared: Prepared,
    batch_id: str,
) -> BatchRecord | None:
    """The batch the key already stands for; None once this request has taken over the key."""
    record = await _existing_batch(store, owner, earlier, prepared.digest, key)
    if record is not None:
        return record
    # The earlier request died between claiming the key and storing its batch.
    await idempotency.release(owner, key)
    if await idempotency.claim(owner, key, Claim(batch_id, prepared.digest)) is not None:
        raise Conflict(
            "Another request with this Idempotency-Key is in progress; retry later.",
            code="idempotency_key_in_use",
            param="Idempotency-Key",
        )
    return None


async def _commit(submitter: Submitter, owner: str, prepared: Prepared, batch_id: str) -> None:
    if prepared.staged is not None:
        await submitter.commit(batch_id, owner, prepared.staged, prepared.options)
    else:
        assert prepared.rejection is not None
        await submitter.commit_rejected(batch_id, owner, prepared.rejection, prepared.options)


async def submit(
    submitter: Submitter,
    idempotency: IdempotencyStore,
    owner: str,
    key: str | None,
    prepared: Prepared,
) -> BatchRecord:
    """Commit a prepared submission, or answer with the batch its idempotency key made."""
    store = submitter.store
    batch_id = new_batch_id()
    if key is not None:
        earlier = await idempotency.claim(owner, key, Claim(batch_id, prepared.digest))
        if earlier is not None:
            try:
                record = await _earlier_batch(
                    idempotency, store, owner, key, earlier, prepared, batch_id
                )
            except BaseException:
                await _discard(store, prepared)
                raise
            if record is not None:
                await _discard(store, prepared)
                return record
    try:
        await _commit(submitter, owner, prepared, batch_id)
    except BaseException:
        if key is not None:
            await idempotency.release(owner, key)
        raise
    return await store.get_batch(batch_id, owner)

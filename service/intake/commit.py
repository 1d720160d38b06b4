"""Commits a staged, validated submission as a stored, queued batch, or a failed one.

The three ways in (a JSONL body, inline ``requests``, an uploaded input file)
all end here once their lines are staged and validated: the batch is committed in
one Redis transaction, then its chunks are queued.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import anyio

from service.errors import BatchRejected, TextbatchError
from service.intake.options import BatchOptions, window_seconds
from service.intake.reading import IngestLimits, StagedSubmission
from service.intake.templates import PromptResolver
from service.intake.validation import LineRules
from service.llm.routing import NO_CHOICE, ProviderChoice
from service.settings import Settings
from service.store.batches import BatchStore
from service.store.prompts import PromptStore
from service.store.records import NewBatch
from service.store.sealing import KeySeal
from service.worker.queue import ChunkDispatcher

log = logging.getLogger(__name__)


class Submitter:
    """Stages, commits and queues batches for the API."""

    def __init__(
        self,
        settings: Settings,
        store: BatchStore,
        dispatcher: ChunkDispatcher,
        route_fault: Callable[[str, ProviderChoice], str | None],
        prompts: PromptStore,
    ) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.route_fault = route_fault
        self.prompts = prompts
        self._queueing: set[asyncio.Task[None]] = set()
        # Checked at start-up (settings_check): set whenever an upstream takes callers' keys.
        secret = settings.secret_key
        self._seal = KeySeal(secret.get_secret_value()) if secret is not None else None

    def rules(self, endpoint: str | None, choice: ProviderChoice = NO_CHOICE) -> LineRules:
        route_fault = self.route_fault
        return LineRules(
            max_text_chars=self.settings.max_text_chars,
            max_output_tokens=self.settings.task_output_cap(),
            endpoint=endpoint,
            route_fault=lambda model: route_fault(model, choice),
        )

    def _sealed(self, options: BatchOptions) -> bytes | None:
        if options.provider_key is None:
            return None
        if self._seal is None:
            raise RuntimeError("a provider key came in but TEXTBATCH_SECRET_KEY is not set")
        return self._seal.seal(options.provider_key)

    def prompt_resolver(self, owner: str) -> PromptResolver:
        """A resolver for one submission (or realtime call) of ``owner``'s."""
        return PromptResolver(self.prompts, owner, self.settings.max_line_bytes)

    def limits(self) -> IngestLimits:
        s = self.settings
        return IngestLimits(s.max_body_bytes, s.max_lines, s.max_line_bytes, s.max_json_depth)

    def _new_batch(
        self, batch_id: str, owner: str, total: int, options: BatchOptions, endpoint: str
    ) -> NewBatch:
        now = int(time.time())
        return NewBatch(
            id=batch_id,
            owner=owner,
            total=total,
            created_at=now,
            expires_at=now + window_seconds(options.completion_window),
            endpoint=endpoint,
            completion_window=options.completion_window,
            metadata=options.metadata,
            input_file_id=options.input_file_id,
            provider=options.provider,
            provider_key=options.provider_key is not None,
            retry_of=options.retry_of,
            lane=options.lane or self.settings.default_lane(),
            lane_chosen=options.lane is not None,
            retention=options.retention or self.settings.retention_seconds(),
            output_expires_after=options.retention,
        )

    async def commit(
        self, batch_id: str, owner: str, staged: StagedSubmission, options: BatchOptions
    ) -> None:
        """Store the staged lines as a batch and queue it."""
        endpoint = options.endpoint or staged.common_url or "mixed"
        batch = self._new_batch(batch_id, owner, staged.total, options, endpoint)
        batch = replace(batch, page_lines=staged.page_lines)
        await self.store.commit_batch(
            batch, staged.upload_id, order=time.time_ns() // 1000, sealed_key=self._sealed(options)
        )
        log.info("batch %s accepted with %d lines", batch.id, batch.total)
        # Queued after the answer: the batch is stored and listed as undispatched, so if
        # this process dies first a worker's sweep queues it. Queueing costs about 0.3 ms
        # a chunk, which a client need not wait for.
        queueing = asyncio.get_running_loop().create_task(self._queue(batch.id, batch.total))
        self._queueing.add(queueing)
        queueing.add_done_callback(self._queueing.discard)

    async def _queue(self, batch_id: str, total: int) -> None:
        try:
            await anyio.to_thread.run_sync(self.dispatcher.dispatch, batch_id, total)
            await self.store.mark_dispatched(batch_id)
        except Exception:
            log.exception("queueing batch %s failed; it will be queued by a later sweep", batch_id)

    async def drain(self) -> None:
        """Let batches being queued finish queueing (at shutdown)."""
        while self._queueing:
            await asyncio.gather(*self._queueing, return_exceptions=True)

    async def commit_rejected(
        self, batch_id: str, owner: str, error: TextbatchError, options: BatchOptions
    ) -> None:
        """The file flow's answer to bad input: a batch that failed, naming each fault."""
        if isinstance(error, BatchRejected):
            errors = [
                {"code": f.code, "message": f.message, "param": f.param, "line": f.line}
                for f in error.faults
            ]
            if error.more:
                errors.append(
                    {
                        "code": "too_many_errors",
                        "message": error.message,
                        "param": None,
                        "line": None,
                    }
                )
        else:
            errors = [
                {
                    "code": error.code,
                    "message": error.message,
                    "param": error.param,
                    "line": error.line,
                }
            ]
        # A batch that never runs keeps no provider key.
        options = replace(options, provider_key=None)
        batch = self._new_batch(batch_id, owner, 0, options, options.endpoint or "mixed")
        await self.store.commit_failed_batch(batch, errors, order=time.time_ns() // 1000)

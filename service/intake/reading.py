"""Turns a submitted body into staged, validated lines, reading it as a stream.

Nothing is committed here: lines are staged under an expiring key while they
are checked, and any fault discards the staging and raises ``BatchRejected``
listing every faulty line (up to ``MAX_LISTED_FAULTS``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.errors import BatchRejected, InvalidRequest, LineFault, PayloadTooLarge
from service.ids import new_id
from service.intake.admission import LineAdmission
from service.intake.custom_ids import SeenIds
from service.intake.json_depth import depth_fault, nesting_depth_over, raw_depth_within
from service.intake.templates import PromptResolver, ResolvedBody, names_prompt
from service.intake.validation import CHAT_COMPLETIONS, LineRules, validate_line
from service.observability.metrics import count_ingest
from service.store.batches import BatchStore

MAX_LISTED_FAULTS = 100
# Lines are stored in pages of PAGE_LINES (one Redis list item each, lines joined by
# newlines): a worker's chunk reads a page or two, and storing 50,000 lines packs
# hundreds of list items rather than 50,000. Pages go to Redis WRITE_PAGES at a time.
PAGE_LINES = 64
WRITE_PAGES = 8
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_body_bytes: int
    max_lines: int
    max_line_bytes: int
    # Levels of objects and arrays a line's body may nest (the line itself is one more).
    max_json_depth: int = 64


@dataclass(slots=True)
class StagedSubmission:
    """Lines that passed validation and sit in staging, ready to be committed."""

    upload_id: str
    total: int
    # The url every line uses, or None when they differ.
    common_url: str | None = None
    # Lines per stored page (see PAGE_LINES).
    page_lines: int = PAGE_LINES


@dataclass(slots=True)
class _Collector:
    """Validates lines one by one, staging the good ones and keeping the first faults."""

    store: BatchStore
    rules: LineRules
    limits: IngestLimits
    prompts: PromptResolver
    upload_id: str = field(default_factory=lambda: new_id("upload"))
    faults: list[LineFault] = field(default_factory=list)
    more_faults: int = 0
    total: int = 0
    blank: int = 0
    seen: SeenIds = field(default_factory=SeenIds)
    # Lines of the page being filled, and full pages not yet written.
    page: list[bytes] = field(default_factory=list)
    pages: list[bytes] = field(default_factory=list)
    urls: set[str] = field(default_factory=set)
    # Bytes of lines as their prompts rendered them, which the body's size does not bound.
    rendered_bytes: int = 0
    admission: LineAdmission = field(init=False)
    # The staging write of the last full pages, if it is still out.
    _writing: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.admission = LineAdmission(
            self.rules.endpoint, self.rules.max_text_chars, self.rules.max_output_tokens
        )

    def add_fault(self, fault: LineFault) -> None:
        if len(self.faults) < MAX_LISTED_FAULTS:
            self.faults.append(fault)
        else:
            self.more_faults += 1

    def count_line(self, line_no: int) -> None:
        self.total += 1
        if self.total > self.limits.max_lines:
            raise PayloadTooLarge(
                f"The batch has more than {self.limits.max_lines} lines, the limit per batch.",
                line=line_no,
            )

    def count_blank_line(self, line_no: int) -> None:
        # Blank lines carry nothing, but reading millions of them still costs time.
        self.blank += 1
        if self.blank > self.limits.max_lines:
            raise PayloadTooLarge(
                f"The batch has more than {self.limits.max_lines} blank lines, the limit per "
                "batch.",
                line=line_no,
            )

    def take_admitted_block(self, lines: list[bytes]) -> bool:
        """Stage a block of lines that all pass the fast check, in a few calls for all.

        Each line is still parsed on its own (a line must be one JSON value); False
        changes nothing, and the lines then go one by one.
        """
        if not lines:
            return True
        largest = max(map(len, lines))
        if largest > self.limits.max_line_bytes or self.total + len(lines) > self.limits.max_lines:
            return False
        try:
            parsed = [orjson.loads(raw) for raw in lines]
        except orjson.JSONDecodeError:
            return False
        if not self.admission.admits_all(parsed, largest):
            return False
        custom_ids = [line["custom_id"] for line in parsed]
        fresh = set(custom_ids)
        if len(fresh) != len(custom_ids) or not self.seen.isdisjoint(fresh):
            return False
        self.total += len(lines)
        self.seen.update(fresh)
        self.urls.add(CHAT_COMPLETIONS)
        if not (self.faults or self.more_faults):
            self._append(lines)
        return True

    def _append(self, lines: list[bytes]) -> None:
        """Add checked lines to the page being filled, closing each page that fills."""
        self.page += lines
        while len(self.page) >= PAGE_LINES:
            self.pages.append(b"\n".join(self.page[:PAGE_LINES]))
            del self.page[:PAGE_LINES]

    @property
    def pages_ready(self) -> bool:
        return len(self.pages) >= WRITE_PAGES

    async def add_line(self, line_no: int, raw: bytes, parsed: Any = None) -> None:
        self.count_line(line_no)
        if len(raw) > self.limits.max_line_bytes:
            self.add_fault(_too_large(line_no, self.limits))
            return
        if parsed is None:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                self.add_fault(
                    LineFault(line=line_no, param=None, message=_json_fault("line", exc))
                )
                return
        if self.admission.admits(parsed, len(raw)) and parsed["custom_id"] not in self.seen:
            self.seen.add(parsed["custom_id"])
            await self._stage(parsed["url"], raw)
            return
        # Admitted lines have a task's shallow shape; any other line may nest without end.
        line_depth = self.limits.max_json_depth + 1
        if not raw_depth_within(raw, line_depth) and nesting_depth_over(parsed, line_depth):
            self.add_fault(depth_fault(line_no, parsed, self.limits.max_json_depth))
            return
        if isinstance(parsed, dict) and names_prompt(parsed.get("body")):
            parsed, raw, line_faults = await self._with_prompt(line_no, parsed)
        else:
            line_faults = validate_line(parsed, line_no, self.rules, self.seen)
        for fault in line_faults:
            self.add_fault(fault)
        if not line_faults:
            await self._stage(parsed["url"], raw)

    async def _stage(self, url: str, raw: bytes) -> None:
        if self.faults or self.more_faults:
            # Once the batch is doomed there is no point staging more of it.
            self.page.clear()
            self.pages.clear()
            return
        self.urls.add(url)
        self._append([raw])
        if self.pages_ready:
            await self.flush()

    async def _with_prompt(
        self, line_no: int, parsed: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes, list[LineFault]]:
        """The line with its prompt rendered, as it will be stored, and its faults."""
        custom_id = parsed.get("custom_id")
        resolved = await self.prompts.resolve(
            parsed["body"],
            parsed.get("url"),
            line_no,
            custom_id if isinstance(custom_id, str) else None,
        )
        if not isinstance(resolved, ResolvedBody):
            faults = validate_line(parsed, line_no, self.rules, self.seen, body_faults=resolved)
            return parsed, b"", faults
        parsed = {**parsed, "body": resolved.body}
        faults = validate_line(parsed, line_no, self.rules, self.seen)
        # Kept beside the body, never in it: it records which version the line used.
        raw = orjson.dumps(
            {**parsed, "prompt": {"slug": resolved.slug, "version": resolved.version}}
        )
        if len(raw) > self.limits.max_line_bytes:
            faults.append(_too_large(line_no, self.limits, "The line with its prompt rendered"))
        self.rendered_bytes += len(raw)
        if self.rendered_bytes > self.limits.max_body_bytes:
            raise PayloadTooLarge(
                f"The batch's lines with their prompts rendered come to more than "
                f"{self.limits.max_body_bytes} bytes, the limit per batch.",
                line=line_no,
            )
        return parsed, raw, faults

    async def flush(self, *, last: bool = False) -> None:
        """Write the full pages (``last``: and the partial one) while checking goes on."""
        if last and self.page:
            self.pages.append(b"\n".join(self.page))
            self.page = []
        pages, self.pages = self.pages, []
        await self._written()
        if pages and not self.faults:
            # Written while the next pages are read and checked; one write out at a time.
            self._writing = asyncio.get_running_loop().create_task(
                self.store.stage_pages(self.upload_id, pages)
            )

    async def _written(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def discard(self) -> None:
        """Drop what was staged, once no write of it is still on its way."""
        with contextlib.suppress(Exception):
            await self._written()
        await self.store.discard_staging(self.upload_id)

    async def finish(self) -> StagedSubmission:
        try:
            if self.total == 0:
                raise InvalidRequest(
                    "The batch input is empty: send at least one request.",
                    code="empty_batch",
                    param="body",
                )
            if self.faults:
                raise BatchRejected(self.faults, self.more_faults)
            await self.flush(last=True)
            await self._written()
        except BaseException:
            await self.discard()
            raise
        common_url = next(iter(self.urls)) if len(self.urls) == 1 else None
        return StagedSubmission(
            upload_id=self.upload_id,
            total=self.total,
            common_url=common_url,
            page_lines=PAGE_LINES,
        )


async def ingest_jsonl(
    chunks: AsyncIterator[bytes],
    store: BatchStore,
    rules: LineRules,
    limits: IngestLimits,
    prompts: PromptResolver,
) -> StagedSubmission:
    """Validate and stage a JSONL stream without holding the whole body in memory."""
    collector = _Collector(store, rules, limits, prompts)
    received = 0
    try:
        # The unfinished last line of what arrived so far, in pieces (joined once, at its end).
        pending: list[bytes] = []
        pending_bytes = 0
        line_no = 0
        # Inside a line already known to be over the limit: skip to its end.
        oversized = False
        async for chunk in chunks:
            received += len(chunk)
            if received > limits.max_body_bytes:
                raise PayloadTooLarge(
                    f"The request body is larger than {limits.max_body_bytes} bytes, the limit."
                )
            if line_no == 0 and not pending and chunk.startswith(UTF8_BOM):
                chunk = chunk[len(UTF8_BOM) :]
            if oversized:
                newline = chunk.find(b"\n")
                if newline < 0:
                    continue
                line_no += 1
                await _oversized(collector, line_no, limits)
                oversized = False
                chunk = chunk[newline + 1 :]
            # Split in C, a chunk at a time.
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if lines:
                if pending:
                    lines[0] = b"".join([*pending, lines[0]])
                    pending, pending_bytes = [], 0
                # CRLF lines and blank ones go one by one, where they are trimmed or skipped.
                crlf = b"\r" in chunk or lines[0].endswith(b"\r")
                if not crlf and collector.take_admitted_block(lines):
                    line_no += len(lines)
                    if collector.pages_ready:
                        await collector.flush()
                    lines = []
                for raw in lines:
                    line_no += 1
                    await _take(collector, line_no, raw, limits)
            if tail:
                pending.append(tail)
                pending_bytes += len(tail)
            # One byte of room for the CR of a CRLF line end.
            if pending_bytes > limits.max_line_bytes + 1:
                oversized = True
                pending, pending_bytes = [], 0
        if oversized:
            await _oversized(collector, line_no + 1, limits)
        elif pending:
            await _take(collector, line_no + 1, b"".join(pending), limits)
    except BaseException:
        await collector.discard()
        raise
    finally:
        count_ingest(collector.total, received)
    return await collector.finish()


async def _take(collector: _Collector, line_no: int, raw: bytes, limits: IngestLimits) -> None:
    raw = raw.rstrip(b"\r")
    if not raw.strip():
        collector.count_blank_line(line_no)  # blank lines (trailing ones above all) are skipped
        return
    await collector.add_line(line_no, raw)


async def _oversized(collector: _Collector, line_no: int, limits: IngestLimits) -> None:
    collector.count_line(line_no)
    collector.add_fault(_too_large(line_no, limits))


def _too_large(line_no: int, limits: IngestLimits, what: str = "The line") -> LineFault:
    return LineFault(
        line=line_no,
        param=None,
        code="line_too_large",
        message=f"{what} is larger than {limits.max_line_bytes} bytes, the limit per line.",
    )


def _json_fault(what: str, exc: orjson.JSONDecodeError) -> str:
    if "utf-8" in str(exc).lower():
        return f"The {what} is not valid UTF-8."
    return f"The {what} is not valid JSON: {exc}."


async def read_json(chunks: AsyncIterator[bytes], limit: int, limit_name: str) -> Any:
    """One JSON document, read whole since it is parsed whole: 413 past ``limit`` bytes."""
    received = bytearray()
    async for chunk in chunks:
        received += chunk
        if len(received) > limit:
            raise PayloadTooLarge(
                f"The request body is larger than {limit} bytes, the limit {limit_name}."
            )
    if not received.strip():
        raise InvalidRequest("The request body is empty: send a JSON object.", param="body")
    try:
        return orjson.loads(received)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(_json_fault("body", exc), param="body") from exc


async def ingest_requests(
    requests: Iterable[Any],
    store: BatchStore,
    rules: LineRules,
    limits: IngestLimits,
    prompts: PromptResolver,
) -> StagedSubmission:
    """Validate and stage the ``requests`` array of a JSON submission."""
    collector = _Collector(store, rules, limits, prompts)
    received = 0
    try:
        line_depth = limits.max_json_depth + 1
        for index, item in enumerate(requests, start=1):
            # orjson writes fewer levels than it reads: check before writing the line out.
            if nesting_depth_over(item, line_depth):
                collector.count_line(index)
                collector.add_fault(depth_fault(index, item, limits.max_json_depth))
                continue
            raw = orjson.dumps(item)
            received += len(raw) + 1  # as a JSONL line, its newline included
            await collector.add_line(index, raw, parsed=item)
    except BaseException:
        await collector.discard()
        raise
    finally:
        count_ingest(collector.total, received)
    return await collector.finish()

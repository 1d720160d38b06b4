"""``/v1/files``: upload a file as a stream, list, read, download and delete files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from service.api.deps import PrincipalDep, StateDep
from service.api.object_ids import known_file_id
from service.api.schemas import ERROR_RESPONSES
from service.errors import InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from service.intake.options import (
    MAX_EXPIRES_AFTER_SECONDS,
    MIN_EXPIRES_AFTER_SECONDS,
    expires_after_seconds,
)
from service.store.files import FileKind, FileRecord, IncomingFile

router = APIRouter(prefix="/v1/files", tags=["files"], responses=ERROR_RESPONSES)

UPLOAD_PURPOSES = frozenset({"batch"})
# Room for the part headers and the small fields around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 1024
MAX_FILENAME_CHARS = 255
# An upload has a file and a purpose; a few more parts are tolerated, not thousands.
MAX_PARTS = 16


class FilePublic(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None

    @classmethod
    def from_record(cls, record: FileRecord) -> FilePublic:
        return cls(
            id=record.id,
            bytes=record.bytes,
            created_at=record.created_at,
            filename=record.filename,
            purpose=record.purpose,
            expires_at=record.expires_at,
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FilePublic]
    first_id: str | None
    last_id: str | None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class _UploadForm:
    """Feeds a multipart body through the streaming parser, the ``file`` part to the store."""

    def __init__(self, boundary: bytes, incoming: IncomingFile) -> None:
        self.incoming = incoming
        self.filename: str | None = None
        self.saw_file = False
        self.fields: dict[str, bytearray] = {}
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._part: str | None = None
        self._in_file = False
        self._parts = 0
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequest(f"The upload has more than {MAX_PARTS} parts, the limit.")
        self._headers = {}
        self._part = None
        self._in_file = False

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        self._part = options.get(b"name", b"").decode("utf-8", "replace")
        if self._part != "file":
            self.fields.setdefault(self._part, bytearray())
            return
        if self.saw_file:
            raise InvalidRequest("Send exactly one 'file' part.", param="file")
        raw_name = options.get(b"filename")
        if raw_name is None:
            raise InvalidRequest("The 'file' part must be a file with a filename.", param="file")
        # Browsers may send a whole client-side path; only its last part is the name.
        name = raw_name.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
        self.filename = name[:MAX_FILENAME_CHARS]
        self.saw_file = self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.incoming.append(data[start:end])
        elif self._part is not None:
            field = self.fields[self._part]
            field += data[start:end]
            if len(field) > MAX_FIELD_BYTES:
                raise InvalidRequest(
                    f"The '{self._part}' field is over {MAX_FIELD_BYTES} bytes.", param=self._part
                )

    def _end(self) -> None:
        self.ended = True

    async def receive(self, request: Request, body_limit: int) -> None:
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > body_limit:
                    raise PayloadTooLarge(
                        f"The file is larger than {self.incoming.limit} bytes, the limit."
                    )
                self.parser.write(chunk)
                await self.incoming.flush()
        except FormParserError as exc:
            raise InvalidRequest(f"The multipart body is malformed: {exc}.", param="file") from exc
        except ClientDisconnect as exc:
            raise InvalidRequest("The client went away before the upload ended.") from exc
        if not self.ended:
            raise InvalidRequest("The multipart body ended before its closing boundary.")


@router.post(
    "",
    response_model=FilePublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": sorted(UPLOAD_PURPOSES)},
                            "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                            "expires_after[seconds]": {
                                "type": "integer",
                                "minimum": MIN_EXPIRES_AFTER_SECONDS,
                                "maximum": MAX_EXPIRES_AFTER_SECONDS,
                            },
                        },
                    }
                }
            },
        }
    },
)
async def upload_file(request: Request, state: StateDep, principal: PrincipalDep) -> FilePublic:
    """Stream one multipart upload to the file store and keep it as a file of the caller's.

    ``expires_after[anchor]=created_at`` and ``expires_after[seconds]`` (1 hour to 30
    days) set when it is removed; otherwise the service's retention does.
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(
            "Upload files as multipart/form-data with a 'file' part and a 'purpose' field.",
            param="content-type",
        )
    limit = state.settings.max_body_bytes
    body_limit = limit + MULTIPART_OVERHEAD_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise PayloadTooLarge(f"The file is larger than {limit} bytes, the limit.")
    incoming = await state.files.begin_upload(limit)
    try:
        form = _UploadForm(boundary, incoming)
        await form.receive(request, body_limit)
        if not form.saw_file or form.filename is None:
            raise InvalidRequest("A 'file' part is required.", param="file")
        purpose = form.fields.get("purpose", bytearray()).decode("utf-8", "replace").strip()
        if not purpose:
            raise InvalidRequest("A 'purpose' field is required.", param="purpose")
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequest(
                f"Uploads take purpose {sorted(UPLOAD_PURPOSES)}, not '{purpose}'.",
                param="purpose",
            )
        record = await state.files.commit_upload(
            incoming,
            owner=principal.owner,
            filename=form.filename,
            purpose=purpose,
            keep_seconds=_keep_seconds(form.fields, state.settings.retention_seconds()),
        )
    except BaseException:
        await incoming.discard()
        raise
    return FilePublic.from_record(record)


def _keep_seconds(fields: dict[str, bytearray], default: int) -> int:
    """How long an upload is kept: its ``expires_after`` fields, checked, or ``default``."""
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return default
    seconds_text = (seconds or bytearray()).decode("utf-8", "replace").strip()
    # A form field is text: a whole number of up to 10 digits is read as one.
    number = int(seconds_text) if seconds_text.isdigit() and len(seconds_text) <= 10 else None
    return expires_after_seconds(
        (anchor or bytearray()).decode("utf-8", "replace").strip(), number, "expires_after"
    )


@router.get("", response_model=FileList)
async def list_files(
    state: StateDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = None,
) -> FileList:
    """The caller's files, newest first unless ``order=asc``."""
    page = await state.files.list_files(
        principal.owner, limit=limit, after=after, order=order, purpose=purpose
    )
    data = [FilePublic.from_record(record) for record in page.files]
    return FileList(
        data=data,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
        has_more=page.has_more,
    )


@router.get("/{file_id}", response_model=FilePublic)
async def retrieve_file(file_id: str, state: StateDep, principal: PrincipalDep) -> FilePublic:
    """The file's metadata (404 when it is not the caller's)."""
    return FilePublic.from_record(await state.files.get(known_file_id(file_id), principal.owner))


async def _started(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Read the first chunk now, so a missing source is an error response, not a cut stream."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""

    async def rest() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return rest()


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}, "application/jsonl": {}}}},
)
async def file_content(file_id: str, state: StateDep, principal: PrincipalDep) -> StreamingResponse:
    """The file's bytes, streamed."""
    record = await state.files.get(known_file_id(file_id), principal.owner)
    if record.kind is FileKind.UPLOAD:
        chunks = await _started(state.files.open_chunks(record))
        return StreamingResponse(
            chunks,
            media_type="application/octet-stream",
            headers={"content-length": str(record.bytes)},
        )
    if record.batch_id is None:
        raise NotFound(f"No content found for file '{file_id}'.", param="file_id")
    chunks = await _started(
        state.results.iter_result_file(record.batch_id, failed=record.kind is FileKind.ERROR)
    )
    return StreamingResponse(chunks, media_type="application/jsonl")


@router.delete("/{file_id}", response_model=FileDeleted)
async def delete_file(file_id: str, state: StateDep, principal: PrincipalDep) -> FileDeleted:
    """Delete the file and free its bytes at once.

    A batch made from it keeps running: it holds its own copy of the lines.
    """
    record = await state.files.delete(known_file_id(file_id), principal.owner)
    return FileDeleted(id=record.id, deleted=True)

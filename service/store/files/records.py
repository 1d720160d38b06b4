"""A file as stored: its metadata record, where its bytes come from, a page of a listing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A Redis hash as read back; named here because FileRecord's ``bytes`` field shadows the type.
RawHash = dict[bytes, bytes]


class FileKind(StrEnum):
    """Where a file's bytes come from."""

    UPLOAD = "upload"
    OUTPUT = "output"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A file as stored in its Redis hash."""

    id: str
    owner: str
    bytes: int
    created_at: int
    filename: str
    purpose: str
    kind: FileKind
    batch_id: str | None = None
    # When the file is removed; a batch's output and error files go with their batch.
    expires_at: int | None = None

    @classmethod
    def from_hash(cls, raw: RawHash) -> FileRecord:
        text = {key.decode(): value.decode() for key, value in raw.items()}
        return cls(
            id=text["id"],
            owner=text["owner"],
            bytes=int(text.get("bytes", "0")),
            created_at=int(text["created_at"]),
            filename=text.get("filename", ""),
            purpose=text["purpose"],
            kind=FileKind(text.get("kind", FileKind.UPLOAD.value)),
            batch_id=text.get("batch_id"),
            expires_at=int(text["expires_at"]) if text.get("expires_at") else None,
        )

    def as_hash(self) -> dict[str, str | int]:
        fields: dict[str, str | int] = {
            "id": self.id,
            "owner": self.owner,
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "kind": self.kind.value,
        }
        if self.batch_id is not None:
            fields["batch_id"] = self.batch_id
        if self.expires_at is not None:
            fields["expires_at"] = self.expires_at
        return fields


@dataclass(frozen=True, slots=True)
class FilePage:
    """One page of an owner's files and whether more follow it."""

    files: list[FileRecord]
    has_more: bool

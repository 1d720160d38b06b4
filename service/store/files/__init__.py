"""The file store: every file's metadata in Redis, uploaded bytes behind one interface.

``FileStore`` (``base``) holds what every store shares: the metadata, the listing,
the retention schedule and the order of a delete. Where the bytes live is a
subclass's job; ``RedisFileStore`` keeps them in Redis, so every API process
behind a load balancer reads the same files.
"""

from service.store.files.base import FileStore, IncomingFile
from service.store.files.records import FileKind, FilePage, FileRecord
from service.store.files.redis_store import CONTENT_CHUNK_BYTES, RedisFileStore

__all__ = [
    "CONTENT_CHUNK_BYTES",
    "FileKind",
    "FilePage",
    "FileRecord",
    "FileStore",
    "IncomingFile",
    "RedisFileStore",
]

"""What the file store holds in Redis: uploads still arriving, and stored files' bytes."""

from __future__ import annotations

import redis

from service.store import keys

CONTENT_KEYS = keys.file_content("*")


def uploads_in_progress(redis_url: str) -> list[bytes]:
    """Content keys of uploads not stored (yet): they still carry an upload's expiry."""
    client = redis.Redis.from_url(redis_url)
    try:
        return [
            key
            for key in client.scan_iter(match=CONTENT_KEYS, count=1000)
            if int(client.ttl(key)) >= 0
        ]
    finally:
        client.close()


def has_content(redis_url: str, file_id: str) -> bool:
    """Whether any byte of the file is still in Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        return bool(client.exists(keys.file_content(file_id)))
    finally:
        client.close()

"""Unguessable identifiers: 128 bits of randomness each, prefixed by kind."""

from __future__ import annotations

import hashlib
import secrets


def new_id(prefix: str) -> str:
    """``prefix_`` followed by 32 hex digits from the OS random source."""
    return f"{prefix}_{secrets.token_hex(16)}"


def new_batch_id() -> str:
    return new_id("batch")


def new_webhook_id() -> str:
    return new_id("wh")


def new_line_result_id() -> str:
    return new_id("batch_req")


def new_completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(16)}"


def new_file_id() -> str:
    """``file-`` and 32 hex digits, the hosted API's shape for file ids."""
    return f"file-{secrets.token_hex(16)}"


def derived_id(prefix: str, batch_id: str, index: int) -> str:
    """An id fixed by batch and line, so a line run twice yields identical output.

    Unguessable as long as the batch id is: it is a keyed digest of it.
    """
    digest = hashlib.blake2b(f"{batch_id}:{index}".encode(), digest_size=16).hexdigest()
    return f"{prefix}{digest}"

"""The shapes of the ids the API hands out, checked at the edge before any Redis key is built.

An id is part of a Redis key name, and a batch's sub-keys are that key with a
suffix (``<id>:results``, ``<id>:lines``): a path naming ``<id>:results`` must
not reach the store, where it would read a key of another kind. An id of the
wrong shape names nothing, so it is a 404 like any unknown id.
"""

from __future__ import annotations

import re

from service.errors import NotFound

# As made by ``service.ids``: a prefix and 32 lowercase hex digits.
BATCH_ID = re.compile(r"batch_[0-9a-f]{32}")
FILE_ID = re.compile(r"file-[0-9a-f]{32}")
WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{32}")
# Echoed ids are clipped, so an error never grows with the request.
MAX_ECHOED_CHARS = 64


def _echo(value: str) -> str:
    return value if len(value) <= MAX_ECHOED_CHARS else value[:MAX_ECHOED_CHARS] + "…"


def known_batch_id(batch_id: str) -> str:
    """``batch_id`` if it has a batch id's shape; NotFound (as for an unknown one) if not."""
    if not BATCH_ID.fullmatch(batch_id):
        raise NotFound(f"No batch found with id '{_echo(batch_id)}'.", param="batch_id")
    return batch_id


def known_file_id(file_id: str, param: str = "file_id") -> str:
    """``file_id`` if it has a file id's shape; NotFound (as for an unknown one) if not."""
    if not FILE_ID.fullmatch(file_id):
        raise NotFound(f"No file found with id '{_echo(file_id)}'.", param=param)
    return file_id


def known_webhook_id(webhook_id: str) -> str:
    """``webhook_id`` if it has a webhook id's shape; NotFound (as for an unknown one) if not."""
    if not WEBHOOK_ID.fullmatch(webhook_id):
        raise NotFound(f"No webhook found with id '{_echo(webhook_id)}'.", param="webhook_id")
    return webhook_id

"""API keys: where they come from, how they are stored (as hashes) and checked.

A key is never kept or logged in clear inside the service: it is hashed on
arrival, and the hash's prefix names the key's owner in storage.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from service.errors import AuthenticationFailed
from service.settings import Settings

GENERATED_KEY_FILE = "api-key"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an owner id derived from the key's hash, never the key."""

    owner: str


class Keyring:
    """The set of accepted keys, held as SHA-256 digests."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._digests = [hash_key(key) for key in keys]

    def authenticate(self, presented: str | None) -> Principal:
        if not presented:
            raise AuthenticationFailed(
                "Missing API key: send it in the x-api-key header or as 'Authorization: Bearer …'."
            )
        digest = hash_key(presented)
        match: bytes | None = None
        # Compare against every key so the time taken does not reveal which one matched.
        for known in self._digests:
            if hmac.compare_digest(digest, known):
                match = known
        if match is None:
            raise AuthenticationFailed("Invalid API key.")
        return Principal(owner=match.hex()[:32])


def ensure_generated_key(data_dir: Path) -> tuple[str, bool]:
    """Return the key kept in the data directory, making one first if there is none."""
    path = data_dir / GENERATED_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = "tb-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, True


def build_keyring(settings: Settings) -> Keyring:
    """Keys from ``TEXTBATCH_API_KEYS``, else the generated key in the data directory."""
    keys = settings.configured_api_keys()
    if not keys:
        keys = [ensure_generated_key(settings.data_dir)[0]]
    return Keyring(keys)

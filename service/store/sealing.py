"""Encrypts a caller's provider key for the while its batch runs (Fernet, ``TEXTBATCH_SECRET_KEY``).

A key a caller sends with ``x-textbatch-provider-key`` is stored only sealed, under
``keys.batch_provider_key``, and opened by the worker that runs the batch's lines.
Fernet (AES-128-CBC with HMAC-SHA256) authenticates as it encrypts, so a token
altered in Redis is refused rather than opened into a wrong key.
"""

from __future__ import annotations

import binascii

from cryptography.fernet import Fernet, InvalidToken


class SealBroken(Exception):
    """A sealed key cannot be opened: another ``TEXTBATCH_SECRET_KEY``, or altered data."""


def is_valid_secret_key(secret_key: str) -> bool:
    """Whether ``secret_key`` is a Fernet key (32 bytes in url-safe base64)."""
    try:
        Fernet(secret_key.encode())
    except (ValueError, binascii.Error):
        return False
    return True


class KeySeal:
    """Seals and opens callers' keys with one secret key."""

    def __init__(self, secret_key: str) -> None:
        self._fernet = Fernet(secret_key.encode())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def seal(self, provider_key: str) -> bytes:
        return self._fernet.encrypt(provider_key.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            raise SealBroken(
                "the batch's provider key cannot be decrypted with TEXTBATCH_SECRET_KEY"
            ) from None

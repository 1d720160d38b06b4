"""Settings mistakes as one line naming the variable and the problem, instead of a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.settings import Settings, load_settings
from service.store.sealing import is_valid_secret_key

# Settings mistakes are usage errors: the exit code argparse and click give one.
SETTINGS_EXIT_CODE = 2

# Values of these never appear in a message: they are, or may carry, secrets.
_SECRET_FIELDS = frozenset({"api_keys", "llm_api_key", "upstreams", "redis_url", "secret_key"})


def _variable(field: str) -> str:
    return f"TEXTBATCH_{field.upper()}"


def describe_settings_error(exc: ValidationError | SettingsError) -> str:
    """One line: each faulty variable, what is wrong, and (if not secret) the value given."""
    if isinstance(exc, SettingsError):
        # pydantic-settings names the field in quotes: 'error parsing value for field "x" …'
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else "?"
        cause = exc.__cause__
        detail = f"not valid JSON ({cause})" if cause is not None else "cannot be parsed"
        return f"{_variable(field)}: {detail}"
    faults = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        field = location[0] if location else "?"
        where = _variable(field) + "".join(f"[{part!r}]" for part in location[1:])
        shown = ""
        if field not in _SECRET_FIELDS and isinstance(error.get("input"), str | int | float):
            shown = f" (got {error['input']!r})"
        faults.append(f"{where}: {error['msg']}{shown}")
    return "; ".join(faults)


def settings_or_exit(**overrides: object) -> Settings:
    """The settings, or a one-line message on stderr and exit code 2."""
    try:
        settings = load_settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        fail_on_settings(describe_settings_error(exc))
    problem = secret_key_problem(settings)
    if problem is not None:
        fail_on_settings(problem)
    return settings


def secret_key_problem(settings: Settings) -> str | None:
    """Why ``TEXTBATCH_SECRET_KEY`` cannot protect callers' provider keys, if it cannot."""
    byok = settings.byok_upstreams()
    if settings.secret_key is None:
        if not byok:
            return None
        return (
            f"TEXTBATCH_SECRET_KEY: required because upstream(s) {', '.join(byok)} allow "
            "callers' own keys (byok); generate one with: python -c 'from "
            "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        )
    if not is_valid_secret_key(settings.secret_key.get_secret_value()):
        # The value itself is never shown: it is a secret even when malformed.
        return (
            "TEXTBATCH_SECRET_KEY: not a valid Fernet key (32 bytes in url-safe base64, "
            "44 characters)"
        )
    return None


def fail_on_settings(message: str) -> NoReturn:
    print(f"textbatch: {message}", file=sys.stderr, flush=True)
    raise SystemExit(SETTINGS_EXIT_CODE)

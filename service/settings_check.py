"""Settings mistakes as one line naming the variable and the problem, instead of a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from service.settings import Settings, load_settings

# Settings mistakes are usage errors: the exit code argparse and click give one.
SETTINGS_EXIT_CODE = 2

# Values of these never appear in a message: they are, or may carry, secrets.
_SECRET_FIELDS = frozenset({"api_keys", "llm_api_key", "upstreams", "redis_url"})


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
        return load_settings(**overrides)
    except (ValidationError, SettingsError) as exc:
        fail_on_settings(describe_settings_error(exc))


def fail_on_settings(message: str) -> NoReturn:
    print(f"textbatch: {message}", file=sys.stderr, flush=True)
    raise SystemExit(SETTINGS_EXIT_CODE)

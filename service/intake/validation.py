"""Checks one batch input line against the line contract, naming every fault it finds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.errors import LineFault
from service.intake.custom_ids import SeenIds
from service.model_hints import (
    NO_DEFAULT_UPSTREAM,
    did_you_mean,
    near_task,
    no_upstream,
    passthrough_needs,
)
from tasks.base import DEFAULT_LIMITS, LIMITS_CONTEXT_KEY, TaskLimits
from tasks.registry import TASKS, get_task

CHAT_COMPLETIONS = "/v1/chat/completions"
# Pass-through lines may use these; each names the field its body cannot do without.
PASSTHROUGH_URLS = {
    CHAT_COMPLETIONS: "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
    "/v1/responses": "input",
    "/v1/moderations": "input",
}
LINE_FIELDS = frozenset({"custom_id", "method", "url", "body"})
CUSTOM_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
DOCUMENT_FIELDS = ("document", "document_mime_type")
# A hostile line can hold a million faults; naming the first few says enough.
MAX_FAULTS_PER_LINE = 20
# Input echoed in a fault is clipped, so an error answer never grows with the input.
MAX_ECHO_CHARS = 200


@dataclass(frozen=True, slots=True)
class LineRules:
    """What a line is checked against: limits, the batch's endpoint, upstream routing."""

    max_text_chars: int
    # A line's ``max_tokens`` above this is refused (TEXTBATCH_LLM_MAX_OUTPUT_TOKENS).
    max_output_tokens: int = DEFAULT_LIMITS.max_output_tokens
    # None: the batch is not bound to one endpoint, any supported url may be used.
    endpoint: str | None = CHAT_COMPLETIONS
    # Why a pass-through model cannot be routed (None: it can); None: no pass-through at all.
    route_fault: Callable[[str], str | None] | None = None

    def task_limits(self) -> TaskLimits:
        """The limits task bodies are validated against under these rules."""
        return TaskLimits(
            max_text_chars=self.max_text_chars, max_output_tokens=self.max_output_tokens
        )


def _clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def line_fault(line: int, custom_id: str | None, param: str | None, message: str) -> LineFault:
    """A fault of one line, its echoed input clipped."""
    return LineFault(
        line=line,
        custom_id=_clip(custom_id, 64) if custom_id is not None else None,
        param=_clip(param) if param is not None else None,
        message=_clip(message, 4 * MAX_ECHO_CHARS),
    )


def _capped(faults: list[LineFault], unlisted: int) -> list[LineFault]:
    """The first ``MAX_FAULTS_PER_LINE`` faults, and one saying how many more there were."""
    more = unlisted + max(0, len(faults) - MAX_FAULTS_PER_LINE)
    if not more:
        return faults
    first = faults[0]
    note = line_fault(
        first.line, first.custom_id, None, f"... and {more} more fault(s) in this line."
    )
    return [*faults[:MAX_FAULTS_PER_LINE], note]


def _passthrough_faults(
    body: dict[str, Any], url: str, rules: LineRules, line: int, custom_id: str | None
) -> list[LineFault]:
    model = body.get("model")
    tasks = ", ".join(f"'{name}'" for name in TASKS)
    if not isinstance(model, str) or not model.strip():
        return [
            line_fault(
                line,
                custom_id,
                "body.model",
                f"model must be a string: {tasks} or an upstream model.",
            )
        ]
    required = PASSTHROUGH_URLS.get(url)
    missing = required is not None and required not in body
    meant = near_task(model, TASKS)
    if meant is not None and missing:
        return [line_fault(line, custom_id, "body.model", did_you_mean(model, meant, TASKS))]
    problem = no_upstream(model, TASKS) if rules.route_fault is None else rules.route_fault(model)
    if problem == NO_DEFAULT_UPSTREAM:
        problem = no_upstream(model, TASKS)
    if problem is not None:
        return [line_fault(line, custom_id, "body.model", problem)]
    if required is not None and missing:
        return [
            line_fault(line, custom_id, f"body.{required}", passthrough_needs(model, required, url))
        ]
    return []


def validate_body(
    body: Any,
    rules: LineRules,
    line: int = 0,
    custom_id: str | None = None,
    url: str = CHAT_COMPLETIONS,
) -> list[LineFault]:
    """Faults of a request body (a line's or a realtime one); params are paths under ``body``."""
    if not isinstance(body, dict):
        return [line_fault(line, custom_id, "body", "body must be a JSON object.")]
    faults: list[LineFault] = []
    for name in DOCUMENT_FIELDS:
        if name in body:
            faults.append(
                line_fault(
                    line,
                    custom_id,
                    f"body.{name}",
                    "Documents are not supported in batches; extract the document's text "
                    "yourself and pass it in the 'text' field.",
                )
            )
    if faults:
        return faults
    model = body.get("model")
    task = get_task(model) if isinstance(model, str) else None
    if task is None:
        return _passthrough_faults(body, url, rules, line, custom_id)
    if url != CHAT_COMPLETIONS:
        return [
            line_fault(
                line, custom_id, "url", f"The {model} task is served at '{CHAT_COMPLETIONS}'."
            )
        ]
    try:
        # The configured limits, not the defaults: a service may allow longer texts.
        task.request_model.model_validate(body, context={LIMITS_CONTEXT_KEY: rules.task_limits()})
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            path = ".".join(str(part) for part in error["loc"])
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            faults.append(line_fault(line, custom_id, f"body.{path}" if path else "body", message))
    return faults


def validate_line(
    obj: Any,
    line: int,
    rules: LineRules,
    seen_custom_ids: SeenIds | set[str],
    body_faults: list[LineFault] | None = None,
) -> list[LineFault]:
    """Every fault of one parsed input line; records its custom_id in ``seen_custom_ids``.

    ``body_faults``, when given, are the faults already found in the body (a prompt it
    names could not be resolved); they are reported instead of checking the body again.
    """
    if not isinstance(obj, dict):
        return [line_fault(line, None, None, "Each line must be a JSON object.")]
    raw_id = obj.get("custom_id")
    custom_id = raw_id if isinstance(raw_id, str) else None
    unknown = sorted(obj.keys() - LINE_FIELDS)
    faults = [
        line_fault(line, custom_id, name, "unknown field") for name in unknown[:MAX_FAULTS_PER_LINE]
    ]
    unlisted = len(unknown) - len(faults)
    if "custom_id" not in obj:
        faults.append(line_fault(line, None, "custom_id", "custom_id is required."))
    elif custom_id is None:
        faults.append(line_fault(line, None, "custom_id", "custom_id must be a string."))
    elif not CUSTOM_ID_PATTERN.fullmatch(custom_id):
        faults.append(
            line_fault(
                line,
                custom_id,
                "custom_id",
                "custom_id must be 1 to 64 characters of letters, digits, '_', '.', ':' or '-'.",
            )
        )
    elif custom_id in seen_custom_ids:
        faults.append(
            line_fault(line, custom_id, "custom_id", f"Duplicate custom_id '{custom_id}'.")
        )
    else:
        seen_custom_ids.add(custom_id)
    if obj.get("method") != "POST":
        faults.append(line_fault(line, custom_id, "method", "method must be 'POST'."))
    url = obj.get("url")
    if rules.endpoint is not None and url != rules.endpoint:
        faults.append(
            line_fault(
                line, custom_id, "url", f"url must be the batch's endpoint, '{rules.endpoint}'."
            )
        )
    elif not isinstance(url, str) or url not in PASSTHROUGH_URLS:
        allowed = ", ".join(f"'{name}'" for name in PASSTHROUGH_URLS)
        faults.append(line_fault(line, custom_id, "url", f"url must be one of {allowed}."))
    if "body" not in obj:
        faults.append(line_fault(line, custom_id, "body", "body is required."))
    elif body_faults is not None:
        faults += body_faults
    elif isinstance(url, str) and url in PASSTHROUGH_URLS:
        faults += validate_body(obj["body"], rules, line, custom_id, url)
    return _capped(faults, unlisted)

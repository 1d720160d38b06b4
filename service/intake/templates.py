"""Turns a request body that names a stored prompt into the ordinary body it stands for.

A body with ``prompt_slug`` (and optionally ``prompt_version`` and
``variables``) is resolved against the caller's prompts when it is submitted:
the version is pinned (the published one unless the body names one), its
messages are rendered with the variables, and its model settings are merged
under the body's own fields. A pass-through body gets ``messages``; a task body
gets ``instructions``, the rendered contents joined. The prompt fields are
dropped, so neither the upstream nor the task ever sees them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import anyio
from jinja2 import Template

from service.errors import InvalidRequest, LineFault, NotFound
from service.intake.prompt_render import (
    compile_messages,
    merge_model_config,
    render_contents,
    variable_fault,
)
from service.intake.validation import CHAT_COMPLETIONS, line_fault
from service.store.prompt_cache import CompileBudget
from service.store.prompts import SLUG_PATTERN, PromptStore, PromptSummary
from tasks.registry import get_task

PROMPT_FIELDS = ("prompt_slug", "prompt_version", "variables")
# Compiled versions kept per submission, by template characters: a batch naming many
# large versions reads some of them again rather than holding them all.
VERSION_CACHE_CHARS = 32 * 1024 * 1024


def names_prompt(body: Any) -> bool:
    """Whether a body asks for a stored prompt (and so must be resolved before it runs)."""
    return isinstance(body, dict) and any(name in body for name in PROMPT_FIELDS)


@dataclass(frozen=True, slots=True)
class ResolvedBody:
    """The body a prompt reference stands for, and the version it was rendered from."""

    body: dict[str, Any]
    slug: str
    version: int


@dataclass(frozen=True, slots=True)
class _CompiledVersion:
    roles: list[str]
    templates: list[Template]
    placeholders: frozenset[str]
    model_config: dict[str, Any]
    chars: int


def _shape_faults(body: dict[str, Any], url: object) -> list[tuple[str, str]]:
    """(param, message) for every way the prompt fields of ``body`` are malformed."""
    if url != CHAT_COMPLETIONS:
        return [("prompt_slug", f"Prompt templates are for '{CHAT_COMPLETIONS}' lines only.")]
    problems: list[tuple[str, str]] = []
    slug, version = body.get("prompt_slug"), body.get("prompt_version")
    if slug is None:
        problems.append(("prompt_slug", "prompt_version and variables need a prompt_slug."))
    elif not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        problems.append(
            ("prompt_slug", "prompt_slug must be 1 to 64 lowercase letters, digits or '-'.")
        )
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        problems.append(("prompt_version", "prompt_version must be a positive integer."))
    if "messages" in body:
        problems.append(("messages", "Give either messages or prompt_slug, not both."))
    model = body.get("model")
    if isinstance(model, str) and get_task(model) is not None and "instructions" in body:
        problems.append(
            ("instructions", "With prompt_slug the task's instructions come from the prompt.")
        )
    variables = body.get("variables", {})
    if not isinstance(variables, dict):
        problems.append(("variables", "variables must be an object of strings and numbers."))
        return problems
    for name, value in variables.items():
        problem = variable_fault(name, value)
        if problem is not None:
            problems.append((f"variables.{name}", problem))
    return problems


def _prompted_body(
    body: dict[str, Any], compiled: _CompiledVersion, contents: list[str]
) -> dict[str, Any]:
    rest = {name: value for name, value in body.items() if name not in PROMPT_FIELDS}
    model = body.get("model")
    task = get_task(model) if isinstance(model, str) else None
    if task is None:
        resolved = merge_model_config(compiled.model_config, rest, None)
        resolved["messages"] = [
            {"role": role, "content": content}
            for role, content in zip(compiled.roles, contents, strict=True)
        ]
        return resolved
    accepted = frozenset(task.request_model.model_fields)
    resolved = merge_model_config(compiled.model_config, rest, accepted)
    resolved["instructions"] = "\n\n".join(contents)
    variables = body.get("variables", {})
    if "text" not in resolved and "text" in variables:
        text = variables["text"]
        resolved["text"] = text if isinstance(text, str) else str(text)
    return resolved


class PromptResolver:
    """Resolves one owner's prompt references, reading each prompt from Redis once.

    One resolver serves one submission: the published version it first sees for a
    slug is the one every line of that submission uses.
    """

    def __init__(self, store: PromptStore, owner: str, max_rendered_chars: int) -> None:
        self.store = store
        self.owner = owner
        self.max_rendered_chars = max_rendered_chars
        self._summaries: dict[str, PromptSummary | None] = {}
        self._versions: OrderedDict[tuple[str, int], _CompiledVersion] = OrderedDict()
        self._cached_chars = 0
        # Templates not in the store's cache are compiled, up to this much per submission.
        self._budget = CompileBudget(store.templates.limits.submission_chars)

    async def pin(self, slug: str, version: int | None) -> int:
        """The version of ``slug`` a line naming ``version`` (or none) uses."""
        if slug not in self._summaries:
            self._summaries[slug] = await self.store.summary(self.owner, slug)
        summary = self._summaries[slug]
        if summary is None:
            raise NotFound(f"No prompt found with slug '{slug}'.", param="prompt_slug")
        if version is None:
            if summary.published_version is None:
                raise InvalidRequest(
                    f"Prompt '{slug}' has no published version: publish one, or name "
                    "prompt_version.",
                    code="unknown_prompt_version",
                    param="prompt_version",
                )
            return summary.published_version
        if version > summary.latest_version:
            raise InvalidRequest(
                f"Prompt '{slug}' has no version {version}; its versions are 1 to "
                f"{summary.latest_version}.",
                code="unknown_prompt_version",
                param="prompt_version",
            )
        return version

    async def _compiled(self, slug: str, version: int) -> _CompiledVersion:
        cached = self._versions.get((slug, version))
        if cached is not None:
            self._versions.move_to_end((slug, version))
            return cached
        stored = await self.store.version(self.owner, slug, version)
        if stored is None:
            raise NotFound(f"No prompt found with slug '{slug}'.", param="prompt_slug")
        contents = [message["content"] for message in stored.messages]
        # Compiling takes up to a second per 100 KB of template: keep it off the event loop.
        templates, placeholders = await anyio.to_thread.run_sync(
            compile_messages, contents, self.owner, self.store.templates, self._budget
        )
        compiled = _CompiledVersion(
            roles=[message["role"] for message in stored.messages],
            templates=templates,
            placeholders=placeholders,
            model_config=stored.model_config,
            chars=sum(len(content) for content in contents),
        )
        self._versions[(slug, version)] = compiled
        self._cached_chars += compiled.chars
        while self._cached_chars > VERSION_CACHE_CHARS and len(self._versions) > 1:
            _, evicted = self._versions.popitem(last=False)
            self._cached_chars -= evicted.chars
        return compiled

    async def _render(self, body: dict[str, Any]) -> ResolvedBody:
        """The resolved body; NotFound or InvalidRequest saying why there is none."""
        slug: str = body["prompt_slug"]
        version = await self.pin(slug, body.get("prompt_version"))
        compiled = await self._compiled(slug, version)
        variables: dict[str, Any] = body.get("variables", {})
        missing = sorted(compiled.placeholders - variables.keys())
        if missing:
            names = ", ".join(f"'{name}'" for name in missing[:20])
            raise InvalidRequest(
                f"variables has no value for {names}, read by prompt '{slug}' version {version}.",
                param="variables",
            )
        try:
            contents = render_contents(compiled.templates, variables, self.max_rendered_chars)
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"Prompt '{slug}' version {version}: {exc.message}", param="prompt_slug"
            ) from None
        return ResolvedBody(_prompted_body(body, compiled, contents), slug, version)

    async def resolve(
        self, body: dict[str, Any], url: object, line: int = 0, custom_id: str | None = None
    ) -> ResolvedBody | list[LineFault]:
        """The body a prompt reference stands for, or the faults that keep it from one."""
        problems = _shape_faults(body, url)
        if not problems:
            try:
                return await self._render(body)
            except (NotFound, InvalidRequest) as exc:
                fault = line_fault(
                    line, custom_id, f"body.{exc.param or 'prompt_slug'}", exc.message
                )
                if exc.code == "template_work_exceeded":
                    # Not a fault of the line itself: its own code tells the client to split.
                    fault = replace(fault, code=exc.code)
                return [fault]
        return [
            line_fault(line, custom_id, f"body.{param}", message) for param, message in problems
        ]

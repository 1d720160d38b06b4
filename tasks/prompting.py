"""Render a task's ``system`` and ``user`` prompt blocks from ``prompts/<task>.j2``.

User-supplied text only ever reaches the templates as a variable value, never as
template source, so template syntax inside it stays literal.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

PROMPT_BLOCKS = ("system", "user")


@cache
def prompt_environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment all prompts render in, built on first use."""
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # Block tags on their own lines should not leave blank lines in the prompt.
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def prompt_template(task_name: str) -> Template:
    """The compiled template of one task."""
    return prompt_environment().get_template(f"{task_name}.j2")


def render_prompt(task_name: str, **variables: Any) -> list[dict[str, str]]:
    """The ``system`` and ``user`` messages of ``task_name`` rendered with ``variables``."""
    template = prompt_template(task_name)
    messages = []
    for block_name in PROMPT_BLOCKS:
        render_block = template.blocks[block_name]
        content = "".join(render_block(template.new_context(dict(variables))))
        messages.append({"role": block_name, "content": content.strip()})
    return messages

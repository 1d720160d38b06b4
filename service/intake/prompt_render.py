"""Stored prompt templates: the sandbox they render in, the Jinja subset they may use, rendering.

A template is checked when it is stored: it must parse, use only the subset
below and stay shallow; its placeholders are the names it reads. Rendering runs
in an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined`` and no globals,
so a template can reach nothing but the line's variables, which are plain
strings and numbers. The subset leaves out what could take unbounded time or
memory at submission (loops, calls, attribute access, arithmetic, string
repetition, filters with costly arguments), and output is capped as it streams.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from service.errors import InvalidRequest
from service.store.prompt_cache import CompileBudget, TemplateCache

# Filter name -> how many arguments it may take; arguments must be literals.
ALLOWED_FILTERS: dict[str, int] = {
    "abs": 0,
    "capitalize": 0,
    "count": 0,
    "float": 0,
    "int": 0,
    "length": 0,
    "lower": 0,
    "round": 2,
    "string": 0,
    "title": 0,
    "tojson": 0,
    "trim": 0,
    "truncate": 4,
    "upper": 0,
    "wordcount": 0,
}
ALLOWED_TESTS = frozenset(
    {"number", "string", "lower", "upper", "eq", "ne", "lt", "le", "gt", "ge", "in"}
    | {"==", "!=", "<", "<=", ">", ">="}
)
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.List,
    nodes.Tuple,
    nodes.Filter,
    nodes.Test,
)
# Deep enough for any real template; deeper ones only strain the parser and compiler.
MAX_NESTING = 32
VARIABLE_TYPES = (str, int, float)


@cache
def template_environment() -> ImmutableSandboxedEnvironment:
    """The one sandbox stored templates compile and render in, built on first use."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # Block tags on their own lines should not leave blank lines in a message.
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in ALLOWED_FILTERS}
    env.tests = {name: env.tests[name] for name in ALLOWED_TESTS}
    return env


_REFUSED = {
    nodes.For: "loops ({% for %}) are",
    nodes.Getattr: "attribute access ('.name') is",
    nodes.Getitem: "item access ('[...]') is",
    nodes.Call: "calling a function or method is",
    nodes.Assign: "{% set %} is",
    nodes.BinExpr: "arithmetic and string operators (+, -, *, /, %, ~) are",
    nodes.Concat: "the ~ operator is",
}


def _refused(node: nodes.Node) -> str:
    for kind, label in _REFUSED.items():
        if isinstance(node, kind):
            return f"{label} not allowed in a prompt template"
    return f"'{type(node).__name__}' is not allowed in a prompt template"


def _subset_fault(node: nodes.Node) -> str | None:
    """Why ``node`` is outside the subset, or None when it is inside."""
    if not isinstance(node, _ALLOWED_NODES):
        return _refused(node)
    if isinstance(node, nodes.Filter):
        limit = ALLOWED_FILTERS.get(node.name)
        if limit is None:
            allowed = ", ".join(ALLOWED_FILTERS)
            return f"the filter '{node.name[:64]}' is not allowed; the filters are {allowed}"
        arguments = [*node.args, *(pair.value for pair in node.kwargs)]
        if node.dyn_args is not None or node.dyn_kwargs is not None or len(arguments) > limit:
            return f"the filter '{node.name}' takes at most {limit} argument(s) here"
        if not all(isinstance(argument, nodes.Const) for argument in arguments):
            return f"the arguments of the filter '{node.name}' must be literals"
    if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
        allowed = ", ".join(sorted(ALLOWED_TESTS))
        return f"the test '{node.name[:64]}' is not allowed; the tests are {allowed}"
    return None


def _check_subset(tree: nodes.Template) -> None:
    # Walked with an explicit stack: a hostile template must not exhaust Python's.
    stack: list[tuple[nodes.Node, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ValueError(f"it nests more than {MAX_NESTING} levels deep")
        fault = _subset_fault(node)
        if fault is not None:
            raise ValueError(fault)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def _checked(source: str) -> tuple[Template, frozenset[str]]:
    """The compiled template and its placeholders; ValueError saying why it is refused."""
    try:
        environment = template_environment()
        tree = environment.parse(source)
        _check_subset(tree)
        placeholders = frozenset(meta.find_undeclared_variables(tree))
        template = environment.from_string(tree)
    except TemplateError as exc:
        raise ValueError(exc.message or type(exc).__name__) from None
    except (RecursionError, SyntaxError):
        raise ValueError("it is nested too deeply") from None
    return template, placeholders


def compile_messages(
    contents: Sequence[str],
    owner: str,
    compiled_cache: TemplateCache,
    budget: CompileBudget | None = None,
) -> tuple[list[Template], frozenset[str]]:
    """Each content's template and every placeholder they read; InvalidRequest naming the index.

    Templates ``owner`` has in ``compiled_cache`` are taken from it; the others are compiled,
    charged to ``budget`` (when given) and kept.
    """
    templates: list[Template] = []
    placeholders: set[str] = set()
    for index, content in enumerate(contents):
        compiled = compiled_cache.get(owner, content)
        if compiled is None:
            if budget is not None and not budget.charge(len(content)):
                raise InvalidRequest(
                    f"The prompt templates this request names come to more than "
                    f"{budget.limit} characters that are not compiled yet, the limit per "
                    "request; send the lines naming other prompts in another request.",
                    code="template_work_exceeded",
                )
            try:
                compiled = _checked(content)
            except ValueError as exc:
                raise InvalidRequest(
                    f"messages[{index}].content is not a valid prompt template: {str(exc)[:300]}",
                    code="invalid_template",
                    param=f"messages.{index}.content",
                ) from None
            compiled_cache.put(owner, content, compiled)
        template, names = compiled
        templates.append(template)
        placeholders |= names
    return templates, frozenset(placeholders)


def variable_fault(name: str, value: Any) -> str | None:
    """Why ``value`` cannot fill a placeholder, or None: only strings and numbers can."""
    if isinstance(value, VARIABLE_TYPES) and not isinstance(value, bool):
        return None
    kind = "a boolean" if isinstance(value, bool) else f"of type {type(value).__name__}"
    if value is None:
        kind = "null"
    return f"variables.{name[:64]} is {kind}; a variable must be a string or a number."


def render_contents(
    templates: Sequence[Template], variables: Mapping[str, Any], max_chars: int
) -> list[str]:
    """Every message's content rendered; InvalidRequest saying which one failed and why.

    Output is counted as it is produced, so a template that would expand past
    ``max_chars`` in all stops there instead of filling memory.
    """
    contents: list[str] = []
    total = 0
    for index, template in enumerate(templates):
        parts: list[str] = []
        try:
            for chunk in template.generate(dict(variables)):
                total += len(chunk)
                if total > max_chars:
                    raise InvalidRequest(
                        f"The rendered messages are over {max_chars} characters, the limit "
                        "per line.",
                        code="invalid_template",
                    )
                parts.append(chunk)
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            # SecurityError and UndefinedError are TemplateErrors; the others come from
            # comparing or filtering values of the wrong type.
            raise InvalidRequest(
                f"messages[{index}] could not be rendered: {str(exc)[:300]}",
                code="invalid_template",
            ) from None
        contents.append("".join(parts))
    return contents


def merge_model_config(
    model_config: Mapping[str, Any], body: Mapping[str, Any], accepted: frozenset[str] | None
) -> dict[str, Any]:
    """The prompt's settings under the body's own fields; ``accepted`` limits which apply."""
    settings = {
        name: value for name, value in model_config.items() if accepted is None or name in accepted
    }
    return {**settings, **body}

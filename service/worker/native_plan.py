"""Which lines of a native batch go in an upstream batch, as what request, in which group.

A task line's request is its first call exactly as the direct lane would send it
(see ``service.worker.native_calls``); a pass-through line's is its body under the
upstream's model name. Lines that need several calls up front (several extraction
passes, a long text split into chunks), run on the offline engine, or take the
direct lane get no request and run directly. Requests are grouped by upstream and
split at the upstream's limits of lines and bytes per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.execution import LineContext, is_task_body, respond
from service.llm.native.base import NativeRequest
from service.llm.openai_compat import OpenAICompatibleBackend
from service.settings import Settings
from service.store.native import NativeGroup
from service.worker.native_calls import CallCaptured, CapturingBackend

DEFAULT_URL = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class RenderedLine:
    """A line as it goes in an upstream batch."""

    index: int
    provider: str
    request: NativeRequest

    @property
    def size(self) -> int:
        """Its bytes in the upstream batch's input file, newline included."""
        request = self.request
        line = {"custom_id": request.custom_id, "method": "POST", "url": request.url}
        return len(orjson.dumps({**line, "body": request.body})) + 1


async def render_line(
    index: int,
    line: dict[str, Any],
    context: LineContext,
    settings: Settings,
    *,
    lane: str,
    lane_chosen: bool,
) -> RenderedLine | None:
    """The line's upstream batch request, or ``None`` when it runs directly."""
    body = line.get("body")
    if not isinstance(body, dict):
        return None
    url = str(line.get("url") or DEFAULT_URL)
    if is_task_body(body):
        provider = "default"
        rendered = await _first_task_call(url, body, context)
    else:
        provider, rendered = _passthrough_body(body, context)
    if rendered is None or not _takes_native(provider, settings, lane, lane_chosen):
        return None
    return RenderedLine(index, provider, NativeRequest(str(index), url, rendered))


def _takes_native(provider: str, settings: Settings, lane: str, lane_chosen: bool) -> bool:
    upstream = settings.upstream_config(provider)
    if upstream is None:
        return False
    return (lane if lane_chosen else upstream.batch) == "native"


async def _first_task_call(
    url: str, body: dict[str, Any], context: LineContext
) -> dict[str, Any] | None:
    if not isinstance(context.backend, OpenAICompatibleBackend):
        return None  # the offline engine runs inside the service
    capture = CapturingBackend(context.backend)
    try:
        await respond(
            url,
            body,
            backend=capture,
            upstreams=context.upstreams,
            limits=context.limits,
            completion_id="",
        )
    except CallCaptured:
        pass
    except Exception:
        # A line fault (or anything else): the direct run reports it as the direct lane does.
        return None
    return capture.bodies[0] if len(capture.bodies) == 1 else None


def _passthrough_body(
    body: dict[str, Any], context: LineContext
) -> tuple[str, dict[str, Any] | None]:
    model = body.get("model")
    if not isinstance(model, str) or context.upstreams.route_fault(model) is not None:
        return "", None
    route = context.upstreams.resolve(model)
    outgoing = dict(body)
    outgoing["model"] = route.upstream_model
    return route.provider, outgoing


def split_groups(
    rendered: list[RenderedLine], limits: dict[str, tuple[int, int]]
) -> list[NativeGroup]:
    """Groups per provider (``default`` first) and endpoint, in input order, within limits.

    An upstream batch has one endpoint, so chat and embedding lines go in different ones.
    """
    by_key: dict[tuple[str, str], list[RenderedLine]] = {}
    for line in sorted(rendered, key=lambda item: item.index):
        by_key.setdefault((line.provider, line.request.url), []).append(line)
    groups: list[NativeGroup] = []
    for provider, url in sorted(by_key, key=lambda key: (key[0] != "default", *key)):
        max_lines, max_bytes = limits[provider]
        indices: list[int] = []
        size = 0
        for line in by_key[(provider, url)]:
            if indices and (len(indices) >= max_lines or size + line.size > max_bytes):
                groups.append(NativeGroup(len(groups), provider, indices))
                indices, size = [], 0
            indices.append(line.index)
            size += line.size
        if indices:
            groups.append(NativeGroup(len(groups), provider, indices))
    return groups


def fits_alone(line: RenderedLine, limits: dict[str, tuple[int, int]]) -> bool:
    """Whether the line fits an upstream batch at all; a larger one runs directly."""
    return line.size <= limits[line.provider][1]


def upstream_limits(settings: Settings, providers: set[str]) -> dict[str, tuple[int, int]]:
    """Lines and bytes per upstream batch of each provider."""
    limits: dict[str, tuple[int, int]] = {}
    for provider in providers:
        upstream = settings.upstream_config(provider)
        assert upstream is not None  # a provider gets lines only when configured
        limits[provider] = (upstream.batch_max_lines, upstream.batch_max_bytes)
    return limits

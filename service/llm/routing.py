"""Routes pass-through models (anything not one of our tasks) to the upstream they name.

A model ``provider/model`` goes to the upstream configured under ``provider`` in
``TEXTBATCH_UPSTREAMS``, with the prefix stripped; a bare model goes to the default
upstream (``TEXTBATCH_LLM_BASE_URL``). The name is split on the first ``/`` only,
so ``anthropic/org/model`` sends ``org/model`` to ``anthropic``.

The rule is strict: a prefix that is not a configured provider is an error, never
a guess. Models whose own names hold a ``/`` (``meta-llama/Llama-3``) are written
with the reserved provider ``default`` in front (``default/meta-llama/Llama-3``),
which always means the default upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidRequest
from service.llm.base import ChatBackend
from service.llm.factory import CapacityShare, build_default_backend, build_openai_backend
from service.llm.openai_compat import OpenAICompatibleBackend
from service.model_hints import NO_DEFAULT_UPSTREAM
from service.settings import Settings

DEFAULT_PROVIDER = "default"

_NO_DEFAULT = NO_DEFAULT_UPSTREAM


@dataclass(frozen=True)
class UpstreamRoute:
    """Where one pass-through model goes and under which name."""

    provider: str
    upstream_model: str
    backend: OpenAICompatibleBackend


class UpstreamRouter:
    """Holds one HTTP backend per upstream and picks the one a model names.

    Given the task backend (``task_backend``, from ``build_backend``), the default
    upstream's pass-through lines use that very object: task and pass-through calls to
    one upstream share one limiter, one pool and what was learned about the server.
    """

    def __init__(
        self,
        settings: Settings,
        share: CapacityShare | None = None,
        *,
        task_backend: ChatBackend | None = None,
    ) -> None:
        if DEFAULT_PROVIDER in settings.upstreams:
            # Letting a configured upstream shadow the reserved name would silently
            # change where every ``default/...`` model goes.
            raise ValueError(
                f"TEXTBATCH_UPSTREAMS must not name an upstream {DEFAULT_PROVIDER!r}; "
                "that name is reserved for TEXTBATCH_LLM_BASE_URL"
            )
        self._default: OpenAICompatibleBackend | None = None
        # Closed by whoever built it; the router closes only the backends it built.
        self._owns_default = not isinstance(task_backend, OpenAICompatibleBackend)
        if isinstance(task_backend, OpenAICompatibleBackend):
            self._default = task_backend
        else:
            self._default = build_default_backend(settings, share)
        self._named: dict[str, OpenAICompatibleBackend] = {
            name: build_openai_backend(
                upstream.base_url,
                upstream.api_key.get_secret_value() if upstream.api_key else None,
                settings,
                upstream=name,
                share=share,
                profile=upstream.profile,
                context_tokens=upstream.context_tokens,
            )
            for name, upstream in settings.upstreams.items()
        }

    def __repr__(self) -> str:
        # Names only: the backends hold keys, and reprs end up in logs.
        default = "configured" if self._default else "none"
        return f"{type(self).__name__}(default={default}, providers={sorted(self._named)!r})"

    def default_backend(self) -> OpenAICompatibleBackend | None:
        """The backend of ``TEXTBATCH_LLM_BASE_URL``, or ``None`` in offline mode."""
        return self._default

    def route_fault(self, model: str) -> str | None:
        """``None`` when ``model`` can be routed, else why not, for a validation error."""
        route_or_fault = self._route(model)
        return route_or_fault if isinstance(route_or_fault, str) else None

    def resolve(self, model: str) -> UpstreamRoute:
        """The route for ``model``; raises ``InvalidRequest`` (param ``model``) if none."""
        route_or_fault = self._route(model)
        if isinstance(route_or_fault, str):
            raise InvalidRequest(route_or_fault, code="model_not_found", param="model")
        return route_or_fault

    async def forward(
        self, path: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any], str | None]:
        """Send ``body`` to the upstream its ``model`` names, under the upstream's model name."""
        model = body.get("model")
        if not isinstance(model, str):
            raise InvalidRequest("model must be a string", param="model")
        route = self.resolve(model)
        outgoing = dict(body)
        outgoing["model"] = route.upstream_model
        return await route.backend.forward(path, outgoing)

    async def aclose(self) -> None:
        """Release every upstream's connections."""
        backends = list(self._named.values())
        if self._default is not None and self._owns_default:
            backends.append(self._default)
        for backend in backends:
            await backend.aclose()

    def _route(self, model: str) -> UpstreamRoute | str:
        if not model.strip():
            return "model must not be empty"
        provider, slash, rest = model.partition("/")
        if not slash:
            if self._default is None:
                return _NO_DEFAULT
            return UpstreamRoute(DEFAULT_PROVIDER, model, self._default)
        if not rest:
            return f"model {model!r} names provider {provider!r} but no model after the '/'"
        if provider == DEFAULT_PROVIDER:
            if self._default is None:
                return _NO_DEFAULT
            return UpstreamRoute(DEFAULT_PROVIDER, rest, self._default)
        backend = self._named.get(provider)
        if backend is None:
            known = sorted(self._named)
            if self._default is not None:
                known.insert(0, DEFAULT_PROVIDER)
            return (
                f"model {model!r} names unknown provider {provider!r}; known providers: "
                f"{', '.join(known) or 'none'}. A model whose own name holds a '/' goes "
                f"to the default upstream as '{DEFAULT_PROVIDER}/{model}'"
            )
        return UpstreamRoute(provider, rest, backend)

"""Routes pass-through models (anything not one of our tasks) to the upstream they name.

A model ``provider/model`` goes to the upstream configured under ``provider`` in
``TEXTBATCH_UPSTREAMS``, with the prefix stripped; a bare model goes to the default
upstream (``TEXTBATCH_LLM_BASE_URL``). The name is split on the first ``/`` only,
so ``anthropic/org/model`` sends ``org/model`` to ``anthropic``.

The rule is strict: a prefix that is not a configured provider is an error, never
a guess. Models whose own names hold a ``/`` (``meta-llama/Llama-3``) are written
with the reserved provider ``default`` in front (``default/meta-llama/Llama-3``),
which always means the default upstream.

A request may choose (``ProviderChoice``, from the ``x-textbatch-provider`` and
``x-textbatch-provider-key`` headers) the upstream its bare models and its task
lines go to, and a key of the caller's own for that upstream. The key goes only to
that upstream, through a view of its backend (``with_api_key``) that shares its pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import InvalidRequest
from service.llm.base import ChatBackend
from service.llm.factory import CapacityShare, build_default_backend, build_openai_backend
from service.llm.openai_compat import OpenAICompatibleBackend
from service.model_hints import NO_DEFAULT_UPSTREAM
from service.settings import Settings

DEFAULT_PROVIDER = "default"

PROVIDER_HEADER = "x-textbatch-provider"
PROVIDER_KEY_HEADER = "x-textbatch-provider-key"

_NO_DEFAULT = NO_DEFAULT_UPSTREAM


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """A request's pick of upstream for bare models and tasks, and the caller's key for it."""

    provider: str | None = None
    # Never in a repr: reprs end up in logs and tracebacks.
    api_key: str | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        """The upstream chosen: the named one, else the default."""
        return self.provider or DEFAULT_PROVIDER


NO_CHOICE = ProviderChoice()


@dataclass(frozen=True)
class UpstreamRoute:
    """Where one pass-through model goes and under which name."""

    provider: str
    upstream_model: str
    backend: OpenAICompatibleBackend
    # Whether the backend carries the caller's own key.
    keyed: bool = False


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
                model=upstream.model,
            )
            for name, upstream in settings.upstreams.items()
        }
        self._byok = {name: upstream.byok for name, upstream in settings.upstreams.items()}
        self._byok[DEFAULT_PROVIDER] = settings.llm_byok

    def __repr__(self) -> str:
        # Names only: the backends hold keys, and reprs end up in logs.
        default = "configured" if self._default else "none"
        return f"{type(self).__name__}(default={default}, providers={sorted(self._named)!r})"

    def default_backend(self) -> OpenAICompatibleBackend | None:
        """The backend of ``TEXTBATCH_LLM_BASE_URL``, or ``None`` in offline mode."""
        return self._default

    def route_fault(self, model: str, choice: ProviderChoice = NO_CHOICE) -> str | None:
        """``None`` when ``model`` can be routed, else why not, for a validation error."""
        route_or_fault = self._route(model, choice)
        return route_or_fault if isinstance(route_or_fault, str) else None

    def resolve(self, model: str, choice: ProviderChoice = NO_CHOICE) -> UpstreamRoute:
        """The route for ``model``; raises ``InvalidRequest`` (param ``model``) if none."""
        route_or_fault = self._route(model, choice)
        if isinstance(route_or_fault, str):
            raise InvalidRequest(route_or_fault, code="model_not_found", param="model")
        return route_or_fault

    def check_choice(self, choice: ProviderChoice) -> None:
        """Refuse (400, naming the header) an unknown upstream or a key it does not take."""
        if choice.provider is not None and self._backend_named(choice.provider) is None:
            known = self._known()
            raise InvalidRequest(
                f"{PROVIDER_HEADER} names unknown provider {choice.provider[:64]!r}; known "
                f"providers: {', '.join(known) or 'none'}.",
                code="unknown_provider",
                param=PROVIDER_HEADER,
            )
        if choice.api_key is not None and not self._byok.get(choice.target, False):
            raise InvalidRequest(
                f"Provider {choice.target!r} does not take the caller's own key; its "
                f'upstream entry must say "byok": true (TEXTBATCH_LLM_BYOK for the default).',
                code="provider_key_not_allowed",
                param=PROVIDER_KEY_HEADER,
            )

    def task_backend(self, choice: ProviderChoice) -> OpenAICompatibleBackend | None:
        """The backend task lines use under ``choice``; ``None``: the usual task backend."""
        if choice.provider is None and choice.api_key is None:
            return None
        backend = self._backend_named(choice.target)
        if backend is not None and choice.api_key is not None:
            backend = backend.with_api_key(choice.api_key)
        return backend

    def priced_model(self, model: str, choice: ProviderChoice) -> str:
        """The name a pass-through ``model`` is priced under: with the chosen provider's prefix."""
        if choice.provider in (None, DEFAULT_PROVIDER) or "/" in model:
            return model
        return f"{choice.provider}/{model}"

    async def forward(
        self, path: str, body: Mapping[str, Any], choice: ProviderChoice = NO_CHOICE
    ) -> tuple[int, dict[str, Any], str | None]:
        """Send ``body`` to the upstream its ``model`` names, under the upstream's model name."""
        model = body.get("model")
        if not isinstance(model, str):
            raise InvalidRequest("model must be a string", param="model")
        route = self.resolve(model, choice)
        outgoing = dict(body)
        outgoing["model"] = route.upstream_model
        status, answer, request_id = await route.backend.forward(path, outgoing)
        if route.keyed and status in (401, 403):
            # The upstream's words about a refused key may quote it, whole or masked.
            answer = {
                "error": {
                    "message": f"The upstream refused the key given in {PROVIDER_KEY_HEADER} "
                    f"(HTTP {status}).",
                    "type": "authentication_error",
                    "code": "provider_key_rejected",
                }
            }
        return status, answer, request_id

    async def aclose(self) -> None:
        """Release every upstream's connections."""
        backends = list(self._named.values())
        if self._default is not None and self._owns_default:
            backends.append(self._default)
        for backend in backends:
            await backend.aclose()

    def _backend_named(self, provider: str) -> OpenAICompatibleBackend | None:
        return self._default if provider == DEFAULT_PROVIDER else self._named.get(provider)

    def _known(self) -> list[str]:
        known = sorted(self._named)
        if self._default is not None:
            known.insert(0, DEFAULT_PROVIDER)
        return known

    def _route(self, model: str, choice: ProviderChoice = NO_CHOICE) -> UpstreamRoute | str:
        route = self._unkeyed_route(model, choice.provider)
        if isinstance(route, str) or choice.api_key is None or route.provider != choice.target:
            return route
        keyed = route.backend.with_api_key(choice.api_key)
        return UpstreamRoute(route.provider, route.upstream_model, keyed, keyed=True)

    def _unkeyed_route(self, model: str, chosen: str | None) -> UpstreamRoute | str:
        if not model.strip():
            return "model must not be empty"
        provider, slash, rest = model.partition("/")
        if not slash and chosen is not None:
            backend = self._backend_named(chosen)
            if backend is None:
                return f"{PROVIDER_HEADER} names unknown provider {chosen[:64]!r}"
            return UpstreamRoute(chosen, model, backend)
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
            known = self._known()
            return (
                f"model {model!r} names unknown provider {provider!r}; known providers: "
                f"{', '.join(known) or 'none'}. A model whose own name holds a '/' goes "
                f"to the default upstream as '{DEFAULT_PROVIDER}/{model}'"
            )
        return UpstreamRoute(provider, rest, backend)

"""FastAPI dependencies: the app's shared resources, the caller's identity, JSON bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError

from service.api.upstream_probe import UpstreamProbe
from service.auth import Keyring, Principal
from service.errors import InvalidRequest, UnsupportedMediaType
from service.intake.commit import Submitter
from service.intake.idempotency import IdempotencyStore
from service.intake.json_depth import depth_message, nesting_depth_over
from service.intake.reading import read_json
from service.llm.base import ChatBackend
from service.llm.pricing import PriceTable
from service.llm.routing import (
    PROVIDER_HEADER,
    PROVIDER_KEY_HEADER,
    ProviderChoice,
    UpstreamRouter,
)
from service.settings import Settings
from service.store.batches import BatchStore
from service.store.files import FileStore
from service.store.prompts import PromptStore
from service.store.results import ResultStore
from service.store.retention import BatchRemoval


@dataclass(slots=True)
class AppState:
    """Everything the routes share, built once by the app's lifespan."""

    settings: Settings
    keyring: Keyring
    store: BatchStore
    results: ResultStore
    files: FileStore
    submitter: Submitter
    idempotency: IdempotencyStore
    backend: ChatBackend
    upstreams: UpstreamRouter
    prices: PriceTable
    prompts: PromptStore
    removal: BatchRemoval
    # The default upstream's liveness for /readyz; None with the offline engine.
    upstream_probe: UpstreamProbe | None = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.textbatch
    return state


StateDep = Annotated[AppState, Depends(get_state)]


# Declared so the OpenAPI document names both ways to send a key ("Authorize" in /docs);
# the key itself is read from the headers below, whichever scheme carried it.
_KEY_HEADER = APIKeyHeader(name="x-api-key", auto_error=False, scheme_name="ApiKeyHeader")
_BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer")


def authenticate(
    request: Request,
    state: StateDep,
    _header_key: Annotated[str | None, Security(_KEY_HEADER)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> Principal:
    """The caller, from ``x-api-key`` or ``Authorization: Bearer``; 401 otherwise."""
    presented = request.headers.get("x-api-key")
    if not presented:
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            presented = credentials.strip()
    return state.keyring.authenticate(presented)


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def _header_value(value: str | None, header: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise InvalidRequest(f"{header} must not be empty.", param=header)
    return value


def provider_choice(
    state: StateDep,
    provider: Annotated[
        str | None,
        Header(
            alias=PROVIDER_HEADER,
            max_length=256,
            description="The upstream (TEXTBATCH_UPSTREAMS name, or `default`) for models "
            "without a `provider/` prefix and for task lines.",
        ),
    ] = None,
    provider_key: Annotated[
        str | None,
        Header(
            alias=PROVIDER_KEY_HEADER,
            max_length=4096,
            description='Your own key for that upstream, if its entry says `"byok": true`; '
            "used for this request or batch only.",
        ),
    ] = None,
) -> ProviderChoice:
    """The provider headers' choice, refused (400) when it names no upstream or may not be used."""
    choice = ProviderChoice(
        provider=_header_value(provider, PROVIDER_HEADER),
        api_key=_header_value(provider_key, PROVIDER_KEY_HEADER),
    )
    state.upstreams.check_choice(choice)
    return choice


# Routes take it after the principal, so a caller without a key is refused first.
ChoiceDep = Annotated[ProviderChoice, Depends(provider_choice)]


async def json_body(request: Request, state: StateDep) -> Any:
    """The body, read as a JSON document of at most one batch line's size."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            "Send the request as JSON (content-type application/json).", param="content-type"
        )
    body = await read_json(request.stream(), state.settings.max_line_bytes, "per JSON request")
    limit = state.settings.max_json_depth
    # Refused here, as orjson could not write it out again for the upstream or the store.
    if nesting_depth_over(body, limit):
        raise InvalidRequest(depth_message(limit, "The body"), code="json_too_deep", param="body")
    return body


# Routes take it after the principal, so a caller without a key is refused unread.
JsonBody = Annotated[Any, Depends(json_body)]

ModelT = TypeVar("ModelT", bound=BaseModel)


def validated(model: type[ModelT], payload: Any) -> ModelT:
    """``payload`` as ``model``; a 400 naming the first field at fault otherwise."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise InvalidRequest(f"{param}: {message}" if param else message, param=param) from None

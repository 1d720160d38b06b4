"""FastAPI dependencies: the app's shared resources and the caller's identity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.auth import Keyring, Principal
from service.files import FileStore
from service.idempotency import IdempotencyStore
from service.llm.base import ChatBackend
from service.pricing import PriceTable
from service.result_store import ResultStore
from service.settings import Settings
from service.storage import BatchStore
from service.submission import Submitter
from service.upstreams import UpstreamRouter


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


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.textbatch
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def authenticate(request: Request, state: StateDep) -> Principal:
    """The caller, from ``x-api-key`` or ``Authorization: Bearer``; 401 otherwise."""
    presented = request.headers.get("x-api-key")
    if not presented:
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            presented = credentials.strip()
    return state.keyring.authenticate(presented)


PrincipalDep = Annotated[Principal, Depends(authenticate)]

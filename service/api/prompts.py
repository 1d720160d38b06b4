"""``/v1/prompts``: store prompt templates, add and publish versions, list, read, delete.

A prompt belongs to the key that made it; for any other key it does not exist (404).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

import anyio
from fastapi import APIRouter, Query

from service.api.deps import AppState, JsonBody, PrincipalDep, StateDep, validated
from service.api.prompt_schemas import (
    ModelSettings,
    PromptCreate,
    PromptDeleted,
    PromptList,
    PromptMessage,
    PromptPublic,
    PromptPublish,
    PromptSummaryPublic,
    PromptVersionCreate,
    PromptVersionPublic,
    json_request_body,
)
from service.api.schemas import ERROR_RESPONSES
from service.errors import NotFound
from service.intake.prompt_render import compile_messages
from service.store.prompts import SLUG_PATTERN, PromptVersion

router = APIRouter(prefix="/v1/prompts", tags=["prompts"], responses=ERROR_RESPONSES)


def _known_slug(slug: str) -> str:
    # A path that cannot be a slug names no prompt; it is never used to build a key.
    if not SLUG_PATTERN.fullmatch(slug):
        raise NotFound(f"No prompt found with slug '{slug[:64]}'.", param="slug")
    return slug


async def _new_version(
    state: AppState, owner: str, messages: list[PromptMessage], settings: ModelSettings | None
) -> PromptVersion:
    """A version checked and ready to store; the store gives it its number.

    Its templates are compiled here and kept, so submissions naming it need not compile.
    """
    contents = [message.content for message in messages]
    # Compiling takes up to two seconds per 100 KB of template: keep it off the event loop.
    _, placeholders = await anyio.to_thread.run_sync(
        compile_messages, contents, owner, state.prompts.templates
    )
    return PromptVersion(
        version=1,
        messages=[{"role": message.role, "content": message.content} for message in messages],
        model_config=settings.model_dump(exclude_none=True) if settings is not None else {},
        placeholders=sorted(placeholders),
        created_at=int(time.time()),
    )


@router.post("", response_model=PromptPublic, openapi_extra=json_request_body(PromptCreate))
async def create_prompt(state: StateDep, principal: PrincipalDep, body: JsonBody) -> PromptPublic:
    """Store a new prompt with its first version, published unless ``publish`` is false."""
    payload = validated(PromptCreate, body)
    first = await _new_version(state, principal.owner, payload.messages, payload.settings)
    await state.prompts.create(principal.owner, payload.slug, first, payload.publish)
    return PromptPublic.of_prompt(await state.prompts.get(principal.owner, payload.slug))


@router.get("", response_model=PromptList)
async def list_prompts(
    state: StateDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(max_length=64, description="a slug")] = None,
) -> PromptList:
    """The caller's prompts in slug order, without their versions, a page at a time."""
    summaries, has_more = await state.prompts.list_prompts(principal.owner, limit, after)
    return PromptList(data=[PromptSummaryPublic.of(item) for item in summaries], has_more=has_more)


@router.get("/{slug}", response_model=PromptPublic)
async def retrieve_prompt(slug: str, state: StateDep, principal: PrincipalDep) -> PromptPublic:
    """The prompt with every version, oldest first."""
    return PromptPublic.of_prompt(await state.prompts.get(principal.owner, _known_slug(slug)))


@router.delete("/{slug}", response_model=PromptDeleted)
async def delete_prompt(slug: str, state: StateDep, principal: PrincipalDep) -> PromptDeleted:
    """Delete the prompt and every version; batches already submitted are not affected."""
    await state.prompts.delete(principal.owner, _known_slug(slug))
    return PromptDeleted(slug=slug)


@router.post(
    "/{slug}/versions",
    response_model=PromptVersionPublic,
    openapi_extra=json_request_body(PromptVersionCreate),
)
async def add_version(
    slug: str, state: StateDep, principal: PrincipalDep, body: JsonBody
) -> PromptVersionPublic:
    """Store the next version; it is not published until ``/publish`` names it."""
    slug = _known_slug(slug)
    payload = validated(PromptVersionCreate, body)
    version = await _new_version(state, principal.owner, payload.messages, payload.settings)
    number = await state.prompts.add_version(principal.owner, slug, version)
    return PromptVersionPublic.of(slug, replace(version, version=number))


@router.post(
    "/{slug}/publish",
    response_model=PromptSummaryPublic,
    openapi_extra=json_request_body(PromptPublish),
)
async def publish_version(
    slug: str, state: StateDep, principal: PrincipalDep, body: JsonBody
) -> PromptSummaryPublic:
    """Make a version the one lines use when they name no ``prompt_version``."""
    slug = _known_slug(slug)
    payload = validated(PromptPublish, body)
    await state.prompts.publish(principal.owner, slug, payload.version, int(time.time()))
    summary = await state.prompts.summary(principal.owner, slug)
    if summary is None:
        raise NotFound(f"No prompt found with slug '{slug}'.", param="slug")
    return PromptSummaryPublic.of(summary)

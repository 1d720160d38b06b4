"""Reads a batch submission in any of its forms and validates it into staging.

JSONL bodies are validated as they stream in; JSON bodies carry inline
``requests`` or an uploaded ``input_file_id``; ``from_prompt`` bodies carry one
variable set per line. The request is hashed on the way, for idempotent retries.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from fastapi import Request

from service.api.deps import AppState, validated
from service.api.object_ids import known_file_id
from service.api.prompt_schemas import BatchFromPrompt
from service.errors import (
    BatchRejected,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from service.intake.idempotency import RequestDigest
from service.intake.options import (
    BatchOptions,
    check_endpoint,
    check_lane,
    output_expires_after,
    validate_metadata,
    window_seconds,
)
from service.intake.reading import (
    ingest_jsonl,
    ingest_requests,
    read_json,
)
from service.intake.submit import Prepared
from service.intake.validation import CHAT_COMPLETIONS
from service.llm.routing import NO_CHOICE, ProviderChoice

JSONL_TYPES = frozenset(
    {
        "application/jsonl",
        "application/x-ndjson",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)
JSON_FIELDS = frozenset(
    {
        "input_file_id",
        "requests",
        "endpoint",
        "completion_window",
        "metadata",
        "lane",
        "output_expires_after",
    }
)


def _chosen(options: BatchOptions, choice: ProviderChoice) -> BatchOptions:
    """``options`` carrying the provider headers' choice, for the batch to run under."""
    return replace(options, provider=choice.provider, provider_key=choice.api_key)


def _digested(choice: ProviderChoice) -> list[str]:
    """What of the provider headers identifies a request: the upstream's name, never the key.

    Nothing without the header, so digests of requests that send none stay as they were.
    """
    return [f"provider={choice.provider}"] if choice.provider is not None else []


def _options(payload: dict[str, Any], state: AppState) -> BatchOptions:
    unknown = sorted(set(payload) - JSON_FIELDS)
    if unknown:
        name = unknown[0][:64]
        raise InvalidRequest(f"Unknown field '{name}'.", param=name)
    endpoint = payload.get("endpoint")
    window = payload.get("completion_window") or state.settings.completion_window
    window_seconds(window)
    input_file_id = payload.get("input_file_id")
    if input_file_id is not None and not isinstance(input_file_id, str):
        raise InvalidRequest("input_file_id must be a string.", param="input_file_id")
    return BatchOptions(
        endpoint=check_endpoint(endpoint) if endpoint is not None else None,
        completion_window=window,
        metadata=validate_metadata(payload.get("metadata")),
        input_file_id=input_file_id,
        lane=check_lane(payload.get("lane")),
        retention=output_expires_after(payload.get("output_expires_after")),
    )


async def _from_file(
    state: AppState, owner: str, options: BatchOptions, digest: str, choice: ProviderChoice
) -> Prepared:
    """The hosted-API flow: bad input makes a ``failed`` batch naming the faults, not a 400."""
    if options.endpoint is None:
        raise InvalidRequest("endpoint is required with input_file_id.", param="endpoint")
    assert options.input_file_id is not None
    file_id = known_file_id(options.input_file_id, param="input_file_id")
    record = await state.files.get(file_id, owner)
    if record.purpose != "batch":
        raise InvalidRequest(
            f"File '{record.id}' has purpose '{record.purpose}'; a batch input needs 'batch'.",
            param="input_file_id",
        )
    submitter = state.submitter
    try:
        staged = await ingest_jsonl(
            state.files.open_chunks(record),
            state.store,
            submitter.rules(options.endpoint, choice),
            submitter.limits(),
            submitter.prompt_resolver(owner),
        )
    except (BatchRejected, PayloadTooLarge) as exc:
        return Prepared(options, digest, rejection=exc)
    except InvalidRequest as exc:
        if exc.code != "empty_batch":
            raise
        return Prepared(options, digest, rejection=exc)
    return Prepared(options, digest, staged=staged)


async def prepare_submission(
    request: Request,
    state: AppState,
    owner: str,
    endpoint: str | None,
    completion_window: str | None,
    *,
    lane: str | None = None,
    keyed: bool = True,
    choice: ProviderChoice = NO_CHOICE,
) -> Prepared:
    """Read, validate and stage a submission; raise for input that makes no batch at all.

    ``keyed``: the request has an idempotency key, so its digest is needed; hashing a
    large body is not free, and a request without a key skips it. ``choice``: the
    provider headers; the upstream's name is part of the digest, the key is not.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # The lane joins the digest only when given, so digests of requests without one stay.
    parts = [content_type, endpoint or "", completion_window or "", *([lane] if lane else [])]
    digest = RequestDigest(*parts, *_digested(choice), enabled=keyed)
    submitter = state.submitter
    if content_type in JSONL_TYPES:
        query = {"endpoint": endpoint, "completion_window": completion_window, "lane": lane}
        options = _chosen(_options(query, state), choice)
        staged = await ingest_jsonl(
            digest.tee(request.stream()),
            state.store,
            submitter.rules(options.endpoint, choice),
            submitter.limits(),
            submitter.prompt_resolver(owner),
        )
        return Prepared(options, digest.hexdigest(), staged=staged)
    if content_type != "application/json":
        raise UnsupportedMediaType(
            "Send the batch as JSONL (content-type application/jsonl or application/x-ndjson) "
            'or as JSON {"input_file_id": ...} or {"requests": [...]} (application/json).',
            param="content-type",
        )
    payload = await read_json(
        digest.tee(request.stream()), state.settings.max_body_bytes, "per request"
    )
    if not isinstance(payload, dict):
        raise InvalidRequest("The JSON body must be an object.", param="body")
    options = _chosen(_options(payload, state), choice)
    if options.input_file_id is not None:
        return await _from_file(state, owner, options, digest.hexdigest(), choice)
    requests = payload.get("requests")
    if not isinstance(requests, list):
        raise InvalidRequest(
            "Send either input_file_id (an uploaded JSONL file) or a requests array.",
            param="requests",
        )
    if len(requests) > state.settings.max_lines:
        raise PayloadTooLarge(
            f"The batch has {len(requests)} lines; the limit is {state.settings.max_lines}."
        )
    staged = await ingest_requests(
        requests,
        state.store,
        submitter.rules(options.endpoint, choice),
        submitter.limits(),
        submitter.prompt_resolver(owner),
    )
    return Prepared(options, digest.hexdigest(), staged=staged)


async def prepare_from_prompt(
    state: AppState, owner: str, body: Any, choice: ProviderChoice = NO_CHOICE
) -> Prepared:
    """One line per variable set, named ``row-<n>`` unless ``custom_ids`` names them.

    An unknown prompt is a 404, as for any other object; faults of single variable
    sets are line faults naming the row, as for any batch input.
    """
    payload = validated(BatchFromPrompt, body)
    digest = RequestDigest("from_prompt", *_digested(choice))
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    window = payload.completion_window or state.settings.completion_window
    window_seconds(window)
    options = BatchOptions(
        endpoint=CHAT_COMPLETIONS,
        completion_window=window,
        metadata=validate_metadata(payload.metadata),
        provider=choice.provider,
        provider_key=choice.api_key,
    )
    rows = len(payload.variables)
    if rows > state.settings.max_lines:
        raise PayloadTooLarge(
            f"There are {rows} variable sets; the limit is {state.settings.max_lines}."
        )
    if payload.custom_ids is not None and len(payload.custom_ids) != rows:
        raise InvalidRequest(
            f"custom_ids must name each of the {rows} variable sets; it has "
            f"{len(payload.custom_ids)} ids.",
            param="custom_ids",
        )
    custom_ids = payload.custom_ids or [f"row-{n}" for n in range(1, rows + 1)]
    resolver = state.submitter.prompt_resolver(owner)
    # Pinned once, so every line uses the version that was published at this moment.
    version = await resolver.pin(payload.prompt_slug, payload.prompt_version)
    requests = (
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": CHAT_COMPLETIONS,
            "body": {
                "model": payload.model,
                "prompt_slug": payload.prompt_slug,
                "prompt_version": version,
                "variables": variables,
            },
        }
        for custom_id, variables in zip(custom_ids, payload.variables, strict=True)
    )
    staged = await ingest_requests(
        requests,
        state.store,
        state.submitter.rules(CHAT_COMPLETIONS, choice),
        state.submitter.limits(),
        resolver,
    )
    return Prepared(options, digest.hexdigest(), staged=staged)

"""Helpers to store prompt templates and name them in batch lines, as a client would."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.support.batches import line


def unique(tag: str) -> str:
    """A slug (or marker) no other test uses, so tests share one service safely."""
    return f"{tag}-{secrets.token_hex(4)}"


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def create_prompt(
    client: httpx.Client, slug: str, messages: list[dict[str, str]], **fields: Any
) -> dict[str, Any]:
    response = client.post("/v1/prompts", json={"slug": slug, "messages": messages, **fields})
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def add_version(
    client: httpx.Client, slug: str, messages: list[dict[str, str]], **fields: Any
) -> int:
    response = client.post(f"/v1/prompts/{slug}/versions", json={"messages": messages, **fields})
    assert response.status_code == 200, response.text
    number: int = response.json()["version"]
    return number


def publish(client: httpx.Client, slug: str, version: int) -> None:
    response = client.post(f"/v1/prompts/{slug}/publish", json={"version": version})
    assert response.status_code == 200, response.text


def prompt_line(
    custom_id: str, slug: str, variables: Any, model: str = "echo-model", **body: Any
) -> dict[str, Any]:
    return line(custom_id, {"model": model, "prompt_slug": slug, "variables": variables, **body})

"""The public shapes of prompt templates and of the requests that name one, split by role."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.store.prompts import Prompt, PromptSummary, PromptVersion
from tasks.base import MAX_TOKENS_LIMIT, SEED_BOUND

MAX_MESSAGES = 50
MAX_CONTENT_BYTES = 100 * 1024
# Bounds what one version costs to store and to compile (about a second per 100 KB).
MAX_VERSION_BYTES = 256 * 1024
SLUG = r"^[a-z0-9-]{1,64}$"
Role = Literal["system", "developer", "user", "assistant"]
# Strict, and closed to unknown fields, so a typo is an error rather than ignored.
_REQUEST = ConfigDict(extra="forbid", strict=True)


class PromptMessage(BaseModel):
    """One message of a prompt; its content is a template."""

    model_config = _REQUEST

    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _content_is_bounded(cls, content: str) -> str:
        size = len(content.encode("utf-8", "surrogatepass"))
        if size > MAX_CONTENT_BYTES:
            raise ValueError(f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES} (100 KB)")
        return content


class ModelSettings(BaseModel):
    """Model settings a prompt carries; the fields a line's body sets itself win."""

    model_config = _REQUEST

    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    max_tokens: Annotated[int | None, Field(gt=0, le=MAX_TOKENS_LIMIT)] = None
    seed: Annotated[int | None, Field(ge=-SEED_BOUND, lt=SEED_BOUND)] = None
    presence_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None


Messages = Annotated[list[PromptMessage], Field(min_length=1, max_length=MAX_MESSAGES)]


class PromptVersionCreate(BaseModel):
    """A new version of a prompt: its messages and, optionally, model settings."""

    model_config = _REQUEST

    messages: Messages
    settings: ModelSettings | None = Field(default=None, alias="model_config")

    @field_validator("messages")
    @classmethod
    def _messages_are_bounded(cls, messages: list[PromptMessage]) -> list[PromptMessage]:
        size = sum(len(item.content.encode("utf-8", "surrogatepass")) for item in messages)
        if size > MAX_VERSION_BYTES:
            raise ValueError(
                f"the contents come to {size} bytes; the limit per version is "
                f"{MAX_VERSION_BYTES} (256 KB)"
            )
        return messages


class PromptCreate(PromptVersionCreate):
    """A new prompt with its first version, published unless ``publish`` is false."""

    slug: Annotated[str, Field(pattern=SLUG)]
    publish: bool = True


class PromptPublish(BaseModel):
    """Which version lines that name no ``prompt_version`` use from now on."""

    model_config = _REQUEST

    version: Annotated[int, Field(ge=1)]


class PromptVersionPublic(BaseModel):
    """One version of a prompt, with the placeholders its messages read."""

    object: Literal["prompt.version"] = "prompt.version"
    slug: str
    version: int
    messages: list[dict[str, str]]
    settings: dict[str, Any] = Field(alias="model_config")
    placeholders: list[str]
    created_at: int

    @classmethod
    def of(cls, slug: str, version: PromptVersion) -> PromptVersionPublic:
        return cls.model_validate(
            {
                "slug": slug,
                "version": version.version,
                "messages": version.messages,
                "model_config": version.model_config,
                "placeholders": version.placeholders,
                "created_at": version.created_at,
            }
        )


class PromptSummaryPublic(BaseModel):
    """A prompt without its versions, as lists show it."""

    object: Literal["prompt"] = "prompt"
    slug: str
    created_at: int
    updated_at: int
    latest_version: int
    published_version: int | None

    @classmethod
    def of(cls, summary: PromptSummary) -> PromptSummaryPublic:
        return cls(
            slug=summary.slug,
            created_at=summary.created_at,
            updated_at=summary.updated_at,
            latest_version=summary.latest_version,
            published_version=summary.published_version,
        )


class PromptPublic(PromptSummaryPublic):
    """A prompt with every version, oldest first."""

    versions: list[PromptVersionPublic]

    @classmethod
    def of_prompt(cls, prompt: Prompt) -> PromptPublic:
        summary = PromptSummaryPublic.of(prompt.summary)
        versions = [PromptVersionPublic.of(summary.slug, item) for item in prompt.versions]
        return cls(**summary.model_dump(), versions=versions)


class PromptList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PromptSummaryPublic]
    has_more: bool


class PromptDeleted(BaseModel):
    slug: str
    object: Literal["prompt.deleted"] = "prompt.deleted"
    deleted: bool = True


class BatchFromPrompt(BaseModel):
    """One batch line per variable set, all rendering the same prompt for the same model."""

    model_config = _REQUEST

    prompt_slug: Annotated[str, Field(pattern=SLUG)]
    prompt_version: Annotated[int | None, Field(ge=1)] = None
    model: Annotated[str, Field(min_length=1)]
    variables: Annotated[list[dict[str, Any]], Field(min_length=1)]
    custom_ids: list[str] | None = None
    metadata: dict[str, str] | None = None
    completion_window: Annotated[str | None, Field(max_length=16)] = None


PROMPT_REFERENCE: dict[str, Any] = {
    "title": "PromptReference",
    "description": "A stored prompt rendered with variables, in place of messages or "
    "instructions; the body's other fields are kept and override the prompt's model_config.",
    "type": "object",
    "required": ["model", "prompt_slug"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "prompt_slug": {"type": "string", "pattern": SLUG},
        "prompt_version": {"type": "integer", "minimum": 1},
        "variables": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    },
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` written in place, for a route's own body."""
    schema = model.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def resolved(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolved(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolved(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolved(item) for item in node]
        return node

    result: dict[str, Any] = resolved(schema)
    return result


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads and validates its JSON itself."""
    content = {"application/json": {"schema": inline_schema(model)}}
    return {"requestBody": {"required": True, "content": content}}

"""The stand-in's answers for ``/v1/responses`` and ``/v1/moderations``, in OpenAI's shapes.

Deterministic from the request, like every stand-in answer. A request that carries a
``prompt_cache_key`` (the hosted API's hint for its prompt cache) is answered as if
half of its prompt, rounded down, came from the cache: ``cached_tokens`` in the usage.
"""

from __future__ import annotations

import time
from typing import Any

from standins import answers


def cached_tokens(body: dict[str, Any], prompt_tokens: int) -> int:
    """The prompt tokens the stand-in claims it served from its cache."""
    return prompt_tokens // 2 if body.get("prompt_cache_key") else 0


def responses_payload(body: dict[str, Any], sequence: int) -> dict[str, Any]:
    """A Responses API answer: one output message echoing the input."""
    text = answers.request_text(body)
    content = "echo: " + text[:50]
    input_tokens = answers.word_count(text)
    output_tokens = answers.word_count(content)
    message = {
        "type": "message",
        "id": f"msg_{sequence:08d}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": content, "annotations": []}],
    }
    return {
        "id": f"resp_{sequence:08d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model", "standin-model"),
        "output": [message],
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens(body, input_tokens)},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def moderation_payload(body: dict[str, Any], sequence: int) -> dict[str, Any]:
    """A moderations answer: one result per input, flagged when it says ``flag-me``."""
    raw = body.get("input", "")
    inputs = [str(item) for item in raw] if isinstance(raw, list) else [str(raw)]
    results = [
        {
            "flagged": "flag-me" in text,
            "categories": {"harassment": "flag-me" in text},
            "category_scores": {"harassment": 0.99 if "flag-me" in text else 0.01},
        }
        for text in inputs
    ]
    return {
        "id": f"modr-{sequence:08d}",
        "model": body.get("model", "omni-moderation-latest"),
        "results": results,
    }

"""The benchmark's input: deterministic JSONL batches, and the chat requests they render to.

Lines mix the three tasks in turn so every prompt template, schema and answer
check is exercised. Texts are drawn from a small pool of generated paragraphs
(a few hundred distinct ones are enough to defeat any per-text cache and keep
generating 200 MB fast); each line's ``custom_id`` is unique.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from tasks.base import DEFAULT_LIMITS
from tasks.execute import first_chat_request, parse_task_body

TEXT_POOL_SIZE = 257

_NAMES = ["Alice Moreau", "Bram Okafor", "Chen Wei", "Dana Kowalski", "Emeka Ade", "Freya Lund"]
_ORGS = ["Northwind Traders", "Contoso Ltd", "Globex", "Initech", "Umbrella Foods", "Vandelay"]
_PROSE = (
    "the order arrived late and the box was damaged so we ask for a refund of the full amount "
    "because the invoice listed items that never shipped while support kept the ticket open "
    "for weeks without any answer from the warehouse team about the missing parts"
)
_WORDS = _PROSE.split(" ")
_ENTITIES = {"person": "A person's full name.", "organization": "A company or organisation."}
_LABELS = [
    {"name": "refund", "rubric": "Does the customer ask for money back?"},
    {"name": "urgent", "rubric": "Does the text say the matter is urgent?"},
]


def _sentence(rng: random.Random) -> str:
    words = rng.choices(_WORDS, k=rng.randint(8, 16))
    words.insert(rng.randrange(len(words)), rng.choice(_NAMES))
    words.insert(rng.randrange(len(words)), f"{rng.randint(2, 9999)}")
    words.insert(rng.randrange(len(words)), rng.choice(_ORGS))
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words) + "."


def _paragraph(rng: random.Random, chars: int) -> str:
    sentences: list[str] = []
    length = 0
    while length < chars:
        sentence = _sentence(rng)
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)[:chars].rstrip() + "."


def text_pool(text_chars: int, seed: int = 7) -> list[str]:
    """Distinct paragraphs of about ``text_chars`` characters each."""
    rng = random.Random(seed)
    return [_paragraph(rng, text_chars) for _ in range(TEXT_POOL_SIZE)]


def task_body(index: int, text: str) -> dict[str, Any]:
    """Line ``index``'s body: summarize, extract and classify in turn."""
    kind = index % 3
    if kind == 0:
        return {"model": "summarize", "text": text, "max_tokens": 60}
    if kind == 1:
        return {"model": "extract", "text": text, "entities": _ENTITIES}
    return {"model": "classify", "text": text, "labels": _LABELS}


def batch_lines(count: int, text_chars: int) -> Iterator[bytes]:
    """``count`` encoded JSONL lines (no newline) with texts of about ``text_chars``."""
    pool = text_pool(text_chars)
    for index in range(count):
        line = {
            "custom_id": f"line-{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": task_body(index, pool[index % len(pool)]),
        }
        yield orjson.dumps(line)


def write_batch(path: Path, count: int, text_chars: int) -> int:
    """Write a JSONL batch file; returns its size in bytes."""
    size = 0
    with path.open("wb") as out:
        for raw in batch_lines(count, text_chars):
            out.write(raw + b"\n")
            size += len(raw) + 1
    return size


def chat_payload(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The chat-completion request the service sends upstream for a task ``body``.

    Built with the project's own task code, field for field as the
    OpenAI-compatible backend builds it, so the baselines send the same bytes' worth.
    """
    task, request = parse_task_body(body)
    payload: dict[str, Any] = {
        "model": model,
        "messages": task.render_messages(request),
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": task.name,
                "schema": task.output_schema(request),
                "strict": True,
            },
        },
    }
    budget = task.output_budget(request, DEFAULT_LIMITS.max_output_tokens)
    sent = first_chat_request(task, request, budget)
    optional = {
        "temperature": sent.temperature,
        "top_p": sent.top_p,
        "seed": sent.seed,
        "max_tokens": sent.max_tokens,
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    return payload


def realtime_body(text_chars: int = 400) -> dict[str, Any]:
    """A summarize body for ``POST /v1/chat/completions``."""
    return {"model": "summarize", "text": text_pool(text_chars, seed=11)[0], "max_tokens": 40}

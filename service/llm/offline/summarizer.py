"""Extractive summaries: pick the text's most representative sentences, in their original order."""

from __future__ import annotations

import math
import re
from collections import Counter

from service.llm.offline.language import content_stems, estimate_tokens, sentence_spans, words

MAX_SENTENCES = 5
LEAD_BONUS = 0.3
# Greetings and sign-offs are sentences of a letter, not of its content.
_SALUTATION = re.compile(
    r"^(?:dear|hi|hello|hey|thanks|thank you|many thanks|best|regards|kind regards|"
    r"best regards|sincerely|cheers)\b",
    re.IGNORECASE,
)
_BULLETS = re.compile(r"\bbullet", re.IGNORECASE)


def summarize(text: str, *, max_tokens: int | None = None, instructions: str = "") -> str:
    """A summary made of whole sentences of ``text``, within ``max_tokens`` when given."""
    sentences = [text[start:end] for start, end in sentence_spans(text)]
    if not sentences:
        return text.strip()
    scores = _sentence_scores(sentences)
    ranked = sorted(range(len(sentences)), key=lambda index: (-scores[index], index))
    as_bullets = bool(_BULLETS.search(instructions))
    chosen = _within_budget(sentences, ranked, max_tokens, as_bullets)
    picked = [sentences[index] for index in sorted(chosen)]
    if as_bullets:
        return "\n".join(f"- {sentence.lstrip('-*• ')}" for sentence in picked)
    return " ".join(picked)


def _sentence_scores(sentences: list[str]) -> list[float]:
    """How central each sentence is: the document frequency of its content words."""
    stems_per_sentence = [content_stems(sentence) for sentence in sentences]
    frequency = Counter(stem for stems in stems_per_sentence for stem in stems)
    top = max(frequency.values(), default=1)
    scores = []
    for index, (sentence, stems) in enumerate(zip(sentences, stems_per_sentence, strict=True)):
        score = sum(frequency[stem] / top for stem in stems) / math.sqrt(len(stems) or 1)
        if index == 0:
            score += LEAD_BONUS
        if len(words(sentence)) < 4 or _SALUTATION.match(sentence):
            score *= 0.2
        scores.append(score)
    return scores


def _within_budget(
    sentences: list[str], ranked: list[int], max_tokens: int | None, as_bullets: bool
) -> list[int]:
    """The best-ranked sentences that fit: ``max_tokens`` if given, else about a third."""
    if max_tokens is None:
        count = min(MAX_SENTENCES, max(1, round(len(sentences) / 3)))
        return ranked[:count]
    chosen: list[int] = []
    spent = 0
    for index in ranked:
        cost = estimate_tokens(sentences[index]) + (1 if as_bullets else 0)
        if spent + cost <= max_tokens:
            chosen.append(index)
            spent += cost
    if not chosen:
        best = ranked[0]
        sentences[best] = _truncated(sentences[best], max_tokens)
        chosen.append(best)
    return chosen


def _truncated(sentence: str, max_tokens: int) -> str:
    """The longest run of leading words of ``sentence`` that fits in ``max_tokens``."""
    kept = sentence.split()
    while len(kept) > 1 and estimate_tokens(" ".join(kept)) > max_tokens:
        kept.pop()
    return " ".join(kept)

"""Rubric matching: a label matches when enough of its keywords, or their synonyms, occur."""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.llm.offline.language import QUESTION_WORDS, content_stems, stem, words

# A label matches when this share of its keyword weight is found in the text.
MATCH_THRESHOLD = 0.5
# Words of the label name count double: the name is the author's own summary of the rubric.
NAME_WEIGHT = 2.0
RUBRIC_WEIGHT = 1.0

_SYNONYM_GROUPS = (
    "refund reimburse reimbursement chargeback repay repayment",
    "cancel cancell cancellation terminate unsubscribe",
    "ship shipment delivery deliver package parcel courier tracking dispatch arrive transit",
    "complaint complain unhappy disappointed dissatisfied dissatisfaction angry frustrated "
    "unacceptable terrible awful poor",
    "urgent urgently asap immediate immediately emergency critical",
    "price cost expensive cheap pricing fee charge",
    "bug error crash broken fails failure defect glitch",
    "invoice bill billing payment pay charged",
    "positive great love excellent amazing happy recommend perfect fantastic wonderful good",
    "negative bad poor terrible awful disappointing worst hate broken useless",
    "spam winner prize lottery click free offer unsubscribe",
    "password login account locked sign access",
    "meeting schedule call appointment calendar",
)


def _synonym_index() -> dict[str, tuple[str, ...]]:
    index: dict[str, tuple[str, ...]] = {}
    for group in _SYNONYM_GROUPS:
        members = tuple(group.split())
        for member in members:
            index[stem(member)] = index.get(stem(member), ()) + members
    return index


_SYNONYMS = _synonym_index()


@dataclass(frozen=True, slots=True)
class RubricKeyword:
    """A keyword stem of a label and how much it counts."""

    stem: str
    weight: float


def label_keywords(name: str, rubric: str) -> list[RubricKeyword]:
    """The weighted keywords of a label: its name's words and its rubric's content words."""
    name_words = " ".join(re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").split("-"))
    weights: dict[str, float] = {}
    for keyword in content_stems(rubric, ignore=QUESTION_WORDS):
        weights[keyword] = max(weights.get(keyword, 0.0), RUBRIC_WEIGHT)
    for keyword in content_stems(name_words, ignore=QUESTION_WORDS):
        weights[keyword] = NAME_WEIGHT
    return [RubricKeyword(keyword, weight) for keyword, weight in weights.items()]


# Phrases that stand for a keyword stem, e.g. "money back" for a refund.
_PHRASES: dict[str, tuple[str, ...]] = {
    "refund": ("money back", "pay me back", "paid back", "return my money"),
    "cancel": ("stop my subscription", "close my account"),
    "urgent": ("right away", "as soon as possible"),
}


def _keyword_found(keyword: str, text_stems: set[str], spaced_text: str) -> bool:
    """Whether the keyword, a one-word synonym or a phrase standing for it is in the text."""
    if keyword in text_stems:
        return True
    if any(stem(synonym) in text_stems for synonym in _SYNONYMS.get(keyword, ())):
        return True
    return any(f" {phrase} " in spaced_text for phrase in _PHRASES.get(keyword, ()))


def label_matches(name: str, rubric: str, text: str) -> bool:
    """Whether ``text`` answers the label's rubric with yes, judged by keyword overlap."""
    keywords = label_keywords(name, rubric)
    if not keywords:
        return False
    text_stems = {stem(word) for word in words(text)}
    # Words joined by single spaces, so phrases match across punctuation and line breaks.
    spaced_text = " " + " ".join(word.lower() for word in words(text)) + " "
    found = sum(
        keyword.weight
        for keyword in keywords
        if _keyword_found(keyword.stem, text_stems, spaced_text)
    )
    return found / sum(keyword.weight for keyword in keywords) >= MATCH_THRESHOLD

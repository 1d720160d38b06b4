"""Plain-text helpers of the offline engine: words, stems, stopwords, sentences, tokens."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable


def word_set(words: str) -> frozenset[str]:
    """The whitespace-separated words of a word list."""
    return frozenset(words.split())


WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")

STOPWORDS = word_set(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either else etc few for from further had has have having he her here hers herself him
    himself his how i if in into is it its itself just let me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own per same she should so
    some such than that the their theirs them themselves then there these they this those
    through to too under until up upon us very via was we were what when where which while
    who whom why will with would yet you your yours yourself yourselves may might must shall
    one two also however
    """
)

# Words that frame a yes/no rubric or name the text itself; they say nothing about the label.
QUESTION_WORDS = word_set(
    """
    text message email mail letter note document passage content post review reviewer ticket writer
    author sender customer user client reader person someone somebody anyone anything
    something mention mentions mentioned mentioning talk talks discuss discusses refer
    refers contain contains include includes express expresses describe describes say says
    said ask asks asking request requests want wants whether question explicitly clearly
    overall generally mainly primarily related relate regarding concern concerns involve
    involves indicate indicates show shows state states seem seems appear appears kind sort
    type topic subject yes true false label category
    """
)


def words(text: str) -> list[str]:
    """The words of ``text`` as written."""
    return WORD.findall(text)


def stem(word: str) -> str:
    """A light stem: lowercase, no plural, ``-ing`` or ``-ed`` ending, no doubled last consonant."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, replacement, min_length in (
        ("ies", "y", 5),
        ("ing", "", 6),
        ("ed", "", 5),
        ("es", "", 5),
        ("s", "", 4),
    ):
        if word.endswith(suffix) and len(word) >= min_length and not word.endswith("ss"):
            word = word[: -len(suffix)] + replacement
            if replacement == "" and suffix in ("ing", "ed") and _doubled_consonant(word):
                word = word[:-1]
            break
    return word


def _doubled_consonant(word: str) -> bool:
    return len(word) > 2 and word[-1] == word[-2] and word[-1] not in "aeiouls"


def content_stems(text: str, *, ignore: Iterable[str] = ()) -> list[str]:
    """Stems of the words that carry meaning: no stopwords, numbers or one-letter words."""
    skipped = STOPWORDS.union(ignore)
    return [
        stem(word)
        for word in words(text)
        if len(word) > 1 and not word.isdigit() and word.lower() not in skipped
    ]


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens a model would count: about four characters per token."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


# A sentence ends at ., ! or ? (with any closing quote or bracket) before space, or at a line break.
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)|\n")
_CLOSERS = ".!?\"'\u201d\u2019)]"
_ABBREVIATIONS = word_set(
    """
    mr mrs ms dr prof sr jr st no vs etc inc ltd co corp e.g i.e approx dept fig jan feb mar
    apr jun jul aug sep sept oct nov dec
    """
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Where each sentence of ``text`` starts and ends, stripped of surrounding space."""
    spans: list[tuple[int, int]] = []
    start = 0
    for boundary in _SENTENCE_END.finditer(text):
        is_line_break = boundary.group() == "\n"
        end = boundary.start() if is_line_break else boundary.end()
        if not is_line_break and (
            _ends_in_abbreviation(text[start:end]) or _continues_lowercase(text, boundary.end())
        ):
            continue
        spans.append((start, end))
        start = boundary.end()
    spans.append((start, len(text)))
    return [_stripped(text, begin, end) for begin, end in spans if text[begin:end].strip()]


def _ends_in_abbreviation(sentence: str) -> bool:
    """Whether the full stop ending ``sentence`` belongs to "Dr.", "e.g." or an initial."""
    last_words = sentence.split()
    if not last_words:
        return False
    last_word = last_words[-1].rstrip(_CLOSERS).lower()
    return last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha())


def _continues_lowercase(text: str, position: int) -> bool:
    """Whether the next word starts in lower case, as after "p.m." in mid-sentence."""
    rest = text[position : position + 40].lstrip(" \t")
    return bool(rest) and rest[0].islower()


def _stripped(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end

"""Recognizers for common entity kinds: each finds the spans of one kind in a text."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from service.llm.offline.gazetteers import FIRST_NAMES, NON_ORG_ACRONYMS, NOT_NAMES, PLACES

Span = tuple[int, int]
Recognizer = Callable[[str], Iterator[Span]]

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_CURRENCY_CODE = r"(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|INR|CNY|SEK|NOK|DKK|PLN|BRL|MXN|ZAR)"
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALE = r"(?:\s?(?:million|billion|thousand|bn|[mkMK])\b)?"

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`]+")
DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}/\d{{1,2}}/\d{{2,4}}|\d{{1,2}}\.\d{{1,2}}\.\d{{4}}"
    rf"|{_MONTH}\.?\s+{_DAY}(?:,?\s+\d{{4}})?"
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH}\.?(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}})\b"
)
MONEY = re.compile(
    rf"(?:[$€£¥]\s?(?:{_AMOUNT}){_SCALE}"
    rf"|\b{_CURRENCY_CODE}\s?(?:{_AMOUNT}){_SCALE}"
    rf"|\b(?:{_AMOUNT}){_SCALE}\s?(?:{_CURRENCY_CODE}|dollars|euros|pounds|yen)\b)"
)
PERCENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:\s?%|\s(?:percent|per cent)\b)")
PHONE = re.compile(
    r"(?<![\w+\-/.])"
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}|(?:\(\d{1,4}\)[ .-]?)?\d{2,4})"
    r"(?:[ .-]\d{2,4}){1,4}(?![\w-])"
)
IDENTIFIER = re.compile(
    r"(?<!\w)#\d{3,}\b|\b[A-Z]{2,5}-?\d[A-Z0-9]*(?:-[A-Z0-9]+)*\b|\b[A-Z]{2,5}-[A-Z0-9]+-\d+\b"
)
_NAME_WORD = r"[A-Z][a-z'\u2019-]+"
_TITLED_NAME = re.compile(
    rf"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Dame)\.?[ \t]+{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}}"
)
_GREETED_NAME = re.compile(
    rf"\b(?:Dear|Hi|Hello|Hey)[ \t]+(?P<name>{_NAME_WORD}(?:[ \t]+{_NAME_WORD})?)"
)
CAPITALIZED_RUN = re.compile(
    r"\b[A-Z][\w&'\u2019-]*(?:[ \t]+(?:(?:of|and|&|for|de)[ \t]+)?[A-Z][\w&'\u2019-]*)*"
)
_ORG_SUFFIX = (
    r"(?:(?:Inc|Ltd|Corp|Co)\b\.?|(?:LLC|LLP|Corporation|GmbH|AG|SA|plc|PLC|Company|Bank|University"
    r"|Group|Holdings|Partners|Foundation|Institute|Association|Technologies|Systems|Labs|Industries"
    r"|Airlines|Motors|Agency|Council|Ministry|Hospital|College|Bureau|Bakery|Clinic|Studio)\b)"
)
ORGANIZATION = re.compile(
    rf"\b(?:[A-Z][\w&'\u2019-]*[ \t]+(?:(?:of|and|&|for)[ \t]+)?){{1,5}}(?:,[ \t]?)?{_ORG_SUFFIX}"
    r"|\b(?:Bank|University|Ministry|Department|Institute|Museum)[ \t]+of(?:[ \t]+the)?"
    r"(?:[ \t]+[A-Z][\w'\u2019-]+)+"
)
_ACRONYM = re.compile(r"(?<![\w-])[A-Z]{2,6}(?![\w-])")
_PLACE_AFTER_PREPOSITION = re.compile(
    rf"\b(?:in|near)[ \t]+(?P<place>{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})"
)
_PLACE_NAMES = re.compile(
    r"\b(?:"
    + "|".join(re.escape(place) for place in sorted(PLACES, key=len, reverse=True))
    + r")\b"
)
_ORG_ENDING = re.compile(_ORG_SUFFIX + r"$")


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[Span]:
    for match in pattern.finditer(text):
        yield match.span()


def find_emails(text: str) -> Iterator[Span]:
    return _matches(EMAIL, text)


def find_urls(text: str) -> Iterator[Span]:
    for match in URL.finditer(text):
        start, end = match.span()
        # Sentence punctuation right after a link is not part of it.
        while end > start and text[end - 1] in ".,;:!?)]}":
            end -= 1
        yield start, end


def find_dates(text: str) -> Iterator[Span]:
    return _matches(DATE, text)


def find_money(text: str) -> Iterator[Span]:
    return _matches(MONEY, text)


def find_percentages(text: str) -> Iterator[Span]:
    return _matches(PERCENT, text)


def find_phone_numbers(text: str) -> Iterator[Span]:
    for match in PHONE.finditer(text):
        digits = sum(character.isdigit() for character in match.group())
        if 7 <= digits <= 15 and not DATE.fullmatch(match.group()):
            yield match.span()


def find_identifiers(text: str) -> Iterator[Span]:
    for match in IDENTIFIER.finditer(text):
        if any(character.isdigit() for character in match.group()):
            yield match.span()


def find_organizations(text: str) -> Iterator[Span]:
    for match in ORGANIZATION.finditer(text):
        start, end = _without_leading_non_names(text, *match.span())
        if len(text[start:end].split()) >= 2:
            yield start, end
    for match in _ACRONYM.finditer(text):
        if match.group() not in NON_ORG_ACRONYMS and not _is_shouting(text, *match.span()):
            yield match.span()


def _is_shouting(text: str, start: int, end: int) -> bool:
    """Whether an all-capitals word sits among other all-capitals words, as in "PLEASE HELP"."""
    before = text[max(0, start - 30) : start].split()
    after = text[end : end + 30].split()
    neighbours = before[-1:] + after[:1]
    return any(word.isupper() and len(word) > 1 for word in neighbours)


def find_locations(text: str) -> Iterator[Span]:
    yield from _matches(_PLACE_NAMES, text)
    for match in _PLACE_AFTER_PREPOSITION.finditer(text):
        place = match.group("place")
        known_other = place.split()[0] in NOT_NAMES or place.split()[0] in FIRST_NAMES
        if not known_other and not _ORG_ENDING.search(place):
            yield match.span("place")


def find_people(text: str) -> Iterator[Span]:
    yield from _matches(_TITLED_NAME, text)
    for match in _GREETED_NAME.finditer(text):
        if match.group("name").split()[0] not in NOT_NAMES:
            yield match.span("name")
    for match in CAPITALIZED_RUN.finditer(text):
        start, end = _without_leading_non_names(text, *match.span())
        if _looks_like_name(text[start:end].split()):
            yield start, end


def _looks_like_name(name_words: list[str]) -> bool:
    """A known first name, optionally followed by one or two capitalised surnames."""
    if not 1 <= len(name_words) <= 3 or name_words[0] not in FIRST_NAMES:
        return False
    return all(
        word[0].isupper() and word[1:].isalpha() and word not in NOT_NAMES and word not in PLACES
        for word in name_words[1:]
    ) and not _ORG_ENDING.search(" ".join(name_words))


def _without_leading_non_names(text: str, start: int, end: int) -> Span:
    """The span without sentence-opening words such as "The" or "Dear"."""
    while True:
        first_word = text[start:end].split(maxsplit=1)
        if len(first_word) < 2 or first_word[0] not in NOT_NAMES:
            return start, end
        start = text.index(first_word[1], start)

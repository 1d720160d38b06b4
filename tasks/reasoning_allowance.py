"""Output tokens a backend's model spends reasoning before it answers, learned from its replies.

A reasoning model (OpenAI's o-series, DeepSeek-R1, Qwen3 thinking) spends part of
the output budget before its answer begins, and a task's budget is sized for the
answer alone. A reply cut off before any JSON began shows the budget went on
reasoning; once the larger re-ask succeeds, its completion tokens say how much this
model reasons, and later calls to the same backend get that much on top, so they
do not each waste a first call.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

_LEARNED: WeakKeyDictionary[object, int] = WeakKeyDictionary()


def reasoning_allowance(backend: object) -> int:
    """The output tokens to add to a task's budget for ``backend``; 0 until one is learned."""
    try:
        return _LEARNED.get(backend, 0)
    except TypeError:  # a backend that cannot be weakly referenced learns nothing
        return 0


def learn_reasoning(backend: object, completion_tokens: int) -> None:
    """Remember that ``backend`` needed ``completion_tokens`` to reason and answer."""
    if completion_tokens <= 0:
        return
    try:
        _LEARNED[backend] = max(completion_tokens, _LEARNED.get(backend, 0))
    except TypeError:
        return

"""A submission's custom_ids: the same answers as a set, below and past the switch to digests."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from service.intake import custom_ids
from service.intake.custom_ids import SeenIds

IDS = st.text(alphabet="ab01-_.:\u00e9\U0001f600", min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(IDS, max_size=80), st.lists(IDS, max_size=20), st.integers(0, 40))
def test_answers_as_a_set_does(added: list[str], asked: list[str], threshold: int) -> None:
    # A low threshold sends most examples past the switch to the digest table.
    original = custom_ids.EXACT_IDS
    custom_ids.EXACT_IDS = threshold
    try:
        seen, expected = SeenIds(), set()
        for custom_id in added:
            assert (custom_id in seen) == (custom_id in expected)
            seen.add(custom_id)
            expected.add(custom_id)
        assert len(seen) == len(expected)
        for custom_id in asked + added:
            assert (custom_id in seen) == (custom_id in expected)
        assert seen.isdisjoint(asked) == expected.isdisjoint(asked)
        seen.update(asked)
        expected.update(asked)
        assert len(seen) == len(expected)
        assert all(custom_id in seen for custom_id in expected)
    finally:
        custom_ids.EXACT_IDS = original


def test_a_repeat_is_found_among_many_ids_after_the_table_grows() -> None:
    seen = SeenIds()
    count = 3 * custom_ids.EXACT_IDS
    for index in range(count):
        seen.add(f"line-{index}")
    assert len(seen) == count
    assert "line-0" in seen
    assert f"line-{count - 1}" in seen
    assert f"line-{count}" not in seen
    assert not seen.isdisjoint(["new", "line-12345"])
    assert seen.isdisjoint(["new", "other"])
    seen.add("line-7")
    assert len(seen) == count


def test_many_ids_cost_far_less_than_a_set_of_them() -> None:
    count = 200_000

    def held(make: type) -> int:
        # The ids are made here, as the parser makes them: only the store keeps them.
        tracemalloc.start()
        try:
            store = make()
            for index in range(count):
                store.add(f"request-{index:07d}")
            size, _ = tracemalloc.get_traced_memory()
            del store
        finally:
            tracemalloc.stop()
        return size

    as_set, as_seen = held(set), held(SeenIds)
    # A set keeps every string and its slot; the digest table 16 bytes a slot, at
    # most half full, and no strings.
    assert as_seen < 0.6 * as_set
    assert as_seen <= 16 * 2 * 2 * count

"""Splitting a native batch into upstream batches, and the upstream window."""

from __future__ import annotations

from service.llm.native.base import NativeRequest
from service.worker.native_plan import RenderedLine, split_groups
from service.worker.native_runner import upstream_window


def rendered(index: int, provider: str = "default", text: str = "x") -> RenderedLine:
    return RenderedLine(
        index, provider, NativeRequest(str(index), "/v1/chat/completions", {"t": text})
    )


def test_groups_hold_at_most_the_upstreams_lines_in_input_order() -> None:
    lines = [rendered(n) for n in reversed(range(120))]
    groups = split_groups(lines, {"default": (50, 10**9)})
    assert [len(g.indices) for g in groups] == [50, 50, 20]
    assert [g.number for g in groups] == [0, 1, 2]
    assert [i for g in groups for i in g.indices] == list(range(120))


def test_groups_stay_under_the_upstreams_bytes() -> None:
    lines = [rendered(n, text="y" * 100) for n in range(10)]
    size = lines[0].size
    groups = split_groups(lines, {"default": (1000, size * 3)})
    assert [len(g.indices) for g in groups] == [3, 3, 3, 1]


def test_each_upstream_gets_its_own_groups_default_first() -> None:
    lines = [rendered(0, "zeta"), rendered(1), rendered(2, "acme"), rendered(3)]
    groups = split_groups(lines, {"default": (9, 10**9), "acme": (9, 10**9), "zeta": (9, 10**9)})
    assert [(g.provider, g.indices) for g in groups] == [
        ("default", [1, 3]),
        ("acme", [2]),
        ("zeta", [0]),
    ]


def test_upstream_window_is_ours_or_the_24_hours_hosted_apis_take() -> None:
    assert upstream_window("10s") == "24h"
    assert upstream_window("24h") == "24h"
    assert upstream_window("48h") == "48h"


def test_chat_and_embedding_lines_go_in_different_upstream_batches() -> None:
    embedding = RenderedLine(1, "default", NativeRequest("1", "/v1/embeddings", {"input": "a"}))
    groups = split_groups([rendered(0), embedding, rendered(2)], {"default": (9, 10**9)})
    assert [g.indices for g in groups] == [[0, 2], [1]]

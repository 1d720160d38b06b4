"""The compiled-template cache's bounds: per key, in all, and which key gives way first."""

from __future__ import annotations

import pytest

from service.errors import InvalidRequest
from service.intake.prompt_render import compile_messages
from service.store.prompt_cache import CompileBudget, TemplateCache, TemplateLimits


def source(tag: str, chars: int = 100) -> str:
    text = f"{tag}: {{{{ name }}}} "
    return (text * (chars // len(text) + 1))[:chars].rsplit("{{", 1)[0]


def test_a_key_over_its_share_evicts_only_its_own_templates() -> None:
    cache = TemplateCache(TemplateLimits(per_key_chars=1_000, total_chars=10_000))
    theirs = source("theirs")
    compile_messages([theirs], "other-key", cache)

    # When one key compiles far more than its share
    for n in range(100):
        compile_messages([source(f"mine-{n}")], "hungry-key", cache)

    # Then it holds no more than its share, its newest kept, and the other key's is kept
    assert cache.cached_chars("hungry-key") <= 1_000
    assert cache.get("hungry-key", source("mine-99")) is not None
    assert cache.get("hungry-key", source("mine-0")) is None
    assert cache.get("other-key", theirs) is not None


def test_when_the_cache_is_full_the_largest_holder_gives_way() -> None:
    cache = TemplateCache(TemplateLimits(per_key_chars=1_000, total_chars=1_500))
    small = source("small")
    compile_messages([small], "small-key", cache)
    for n in range(10):
        compile_messages([source(f"big-{n}")], "big-key", cache)

    # When a third key fills what is left
    for n in range(5):
        compile_messages([source(f"third-{n}")], "third-key", cache)

    # Then the total stays bounded and the key holding least keeps its template
    total = sum(cache.cached_chars(key) for key in ("small-key", "big-key", "third-key"))
    assert total <= 1_500
    assert cache.get("small-key", small) is not None


def test_templates_are_kept_per_key_not_shared() -> None:
    cache = TemplateCache()
    shared = source("same text")
    compile_messages([shared], "first-key", cache)
    assert cache.get("first-key", shared) is not None
    assert cache.get("second-key", shared) is None


def test_a_request_compiles_at_most_its_budget_of_uncached_templates() -> None:
    cache = TemplateCache()
    budget = CompileBudget(250)
    kept = source("kept")
    compile_messages([kept], "key", cache)

    # Cached templates cost nothing; uncached ones are charged until the budget runs out
    templates, names = compile_messages([kept, source("a"), source("b")], "key", cache, budget)
    assert len(templates) == 3 and names == {"name"}
    assert budget.remaining == 250 - len(source("a")) - len(source("b"))
    with pytest.raises(InvalidRequest) as refused:
        compile_messages([source("c")], "key", cache, budget)
    assert refused.value.code == "template_work_exceeded"
    assert "250" in refused.value.message
    # What was refused was not compiled, so it is not kept either
    assert cache.get("key", source("c")) is None

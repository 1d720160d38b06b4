"""Properties of whole batches, drawn by hypothesis and run through the real service."""

from __future__ import annotations

import string
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service.test_batch_validation import batch_count
from tests.support.batches import line, run_batch, submit
from tests.support.service import RunningService

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=300,
).filter(lambda text: text.strip() != "")
label_names = st.text(alphabet=string.ascii_letters, min_size=1, max_size=12)


@st.composite
def task_bodies(draw: st.DrawFn) -> dict[str, Any]:
    text = draw(texts)
    model = draw(st.sampled_from(["extract", "summarize", "classify"]))
    if model == "extract":
        names = draw(st.lists(label_names, min_size=1, max_size=3, unique=True))
        return {"model": model, "text": text, "entities": {name: f"a {name}" for name in names}}
    if model == "classify":
        names = draw(st.lists(label_names, min_size=1, max_size=3, unique=True))
        return {
            "model": model,
            "text": text,
            "labels": [{"name": n, "rubric": f"Is it {n}?"} for n in names],
        }
    return {"model": model, "text": text}


@st.composite
def valid_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    bodies = draw(st.lists(task_bodies(), min_size=1, max_size=12))
    ids = draw(
        st.lists(
            st.text(
                alphabet=string.ascii_letters + string.digits + "_.:-", min_size=1, max_size=64
            ),
            min_size=len(bodies),
            max_size=len(bodies),
            unique=True,
        )
    )
    return [line(custom_id, body) for custom_id, body in zip(ids, bodies, strict=True)]


BREAKERS: list[tuple[str, Any]] = [
    ("model", "not-a-task"),
    ("text", ""),
    ("text", 12),
    ("surprise", True),
]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=valid_batches())
def test_every_valid_batch_yields_one_output_line_per_input_line(
    offline_service: RunningService, batch: list[dict[str, Any]]
) -> None:
    with offline_service.client() as client:
        result, output = run_batch(client, batch)
    assert result["status"] == "completed"
    assert result["request_counts"]["completed"] + result["request_counts"]["failed"] == len(batch)
    assert [item["custom_id"] for item in output] == [item["custom_id"] for item in batch]
    for source, item in zip(batch, output, strict=True):
        if source["body"]["model"] == "extract" and item["error"] is None:
            content = orjson.loads(item["response"]["body"]["choices"][0]["message"]["content"])
            for entity in content["entities"]:
                assert source["body"]["text"][entity["start"] : entity["end"]] == entity["text"]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=valid_batches(), data=st.data())
def test_one_invalid_line_yields_400_naming_it_and_stores_nothing(
    offline_service: RunningService,
    redis_url: str,
    batch: list[dict[str, Any]],
    data: st.DataObject,
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=len(batch) - 1))
    field, value = data.draw(st.sampled_from(BREAKERS))
    batch[position]["body"][field] = value
    before = batch_count(redis_url)
    with offline_service.client() as client:
        response = submit(client, batch)
    assert response.status_code == 400, response.text
    faults = response.json()["error"]["lines"]
    assert {fault["line"] for fault in faults} == {position + 1}
    assert all(fault["custom_id"] == batch[position]["custom_id"] for fault in faults)
    assert batch_count(redis_url) == before

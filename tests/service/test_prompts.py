"""``/v1/prompts``: storing templates and their versions, per key, checked when they are stored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import run_batch, submit
from tests.support.prompts import add_version, create_prompt, prompt_line, unique, user
from tests.support.service import RunningService, start_service


def test_prompt_versions_are_numbered_and_the_first_is_published(
    llm_service: RunningService,
) -> None:
    slug = unique("summarize-ticket")
    with llm_service.client() as client:
        # Given a prompt stored with one version and model settings
        created = create_prompt(
            client,
            slug,
            [
                {"role": "system", "content": "You summarize support tickets."},
                {"role": "user", "content": "Summarize in {{ lang }}: {{ text }}"},
            ],
            model_config={"temperature": 0.2, "max_tokens": 64},
        )
        # When a second version is added, then published
        second = client.post(
            f"/v1/prompts/{slug}/versions", json={"messages": user("Short: {{ text }}")}
        ).json()
        unpublished = client.get(f"/v1/prompts/{slug}").json()
        published = client.post(f"/v1/prompts/{slug}/publish", json={"version": 2}).json()
        listed = client.get("/v1/prompts", params={"limit": 1000}).json()
        fetched = client.get(f"/v1/prompts/{slug}").json()

    # Then versions count up from 1, the first is published at creation, the second on demand
    assert created["object"] == "prompt" and created["slug"] == slug
    assert (created["latest_version"], created["published_version"]) == (1, 1)
    (first,) = created["versions"]
    assert first["version"] == 1 and first["placeholders"] == ["lang", "text"]
    assert first["model_config"] == {"temperature": 0.2, "max_tokens": 64}
    assert second["version"] == 2 and second["placeholders"] == ["text"]
    assert second["model_config"] == {}
    assert unpublished["published_version"] == 1
    assert (published["latest_version"], published["published_version"]) == (2, 2)
    assert [v["version"] for v in fetched["versions"]] == [1, 2]
    assert fetched["versions"][0]["messages"][1]["content"] == "Summarize in {{ lang }}: {{ text }}"
    summary = next(item for item in listed["data"] if item["slug"] == slug)
    assert "versions" not in summary and summary["published_version"] == 2


def test_a_prompt_can_be_created_unpublished(llm_service: RunningService) -> None:
    slug = unique("draft")
    with llm_service.client() as client:
        created = create_prompt(client, slug, user("Draft {{ x }}"), publish=False)
        # A line naming no version has nothing to use; one naming version 1 does
        refused = submit(client, [prompt_line("d-1", slug, {"x": "a"})])
        _, output = run_batch(client, [prompt_line("d-2", slug, {"x": "a"}, prompt_version=1)])
    assert created["published_version"] is None
    assert refused.status_code == 400
    assert "no published version" in refused.json()["error"]["lines"][0]["message"]
    assert output[0]["response"]["status_code"] == 200


def test_duplicate_slug_is_409_and_delete_removes_every_version(
    llm_service: RunningService,
) -> None:
    slug = unique("dupe")
    with llm_service.client() as client:
        create_prompt(client, slug, user("One"))
        add_version(client, slug, user("Two"))
        duplicate = client.post("/v1/prompts", json={"slug": slug, "messages": user("Again")})
        deleted = client.delete(f"/v1/prompts/{slug}")
        after = client.get(f"/v1/prompts/{slug}")
        listed = client.get("/v1/prompts", params={"limit": 1000}).json()
        again = client.post("/v1/prompts", json={"slug": slug, "messages": user("Fresh")})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "prompt_exists"
    assert deleted.json() == {"slug": slug, "object": "prompt.deleted", "deleted": True}
    assert after.status_code == 404
    assert slug not in {item["slug"] for item in listed["data"]}
    assert again.status_code == 200 and again.json()["latest_version"] == 1


def test_another_key_gets_404_as_if_the_prompt_did_not_exist(
    llm_service: RunningService,
) -> None:
    slug = unique("private")
    with llm_service.client() as owner:
        create_prompt(owner, slug, user("Mine {{ x }}"))
    with llm_service.client(llm_service.keys[1]) as other:
        answers = [
            other.get(f"/v1/prompts/{slug}"),
            other.delete(f"/v1/prompts/{slug}"),
            other.post(f"/v1/prompts/{slug}/versions", json={"messages": user("Theirs")}),
            other.post(f"/v1/prompts/{slug}/publish", json={"version": 1}),
            other.post(
                "/v1/batches/from_prompt",
                json={"prompt_slug": slug, "model": "echo-model", "variables": [{"x": "1"}]},
            ),
        ]
        listed = other.get("/v1/prompts", params={"limit": 1000}).json()
        line_refused = submit(other, [prompt_line("theirs", slug, {"x": "1"})])
        realtime = other.post(
            "/v1/chat/completions",
            json={"model": "echo-model", "prompt_slug": slug, "variables": {"x": "1"}},
        )
        # The slug is unique per key only: the other key may use it for its own prompt
        own = other.post("/v1/prompts", json={"slug": slug, "messages": user("Theirs")})
    assert [answer.status_code for answer in answers] == [404] * 5
    assert all(answer.json()["error"]["code"] == "not_found" for answer in answers)
    assert slug not in {item["slug"] for item in listed["data"]}
    assert line_refused.status_code == 400
    assert line_refused.json()["error"]["lines"][0]["param"] == "body.prompt_slug"
    assert realtime.status_code == 400 and realtime.json()["error"]["param"] == "prompt_slug"
    assert own.status_code == 200
    with llm_service.client() as owner:
        assert owner.get(f"/v1/prompts/{slug}").json()["versions"][0]["messages"] == user(
            "Mine {{ x }}"
        )


def test_template_that_does_not_parse_is_400_naming_the_message(
    llm_service: RunningService,
) -> None:
    messages = [{"role": "system", "content": "Fine {{ a }}"}, *user("Broken {{ b ")]
    with llm_service.client() as client:
        response = client.post("/v1/prompts", json={"slug": unique("broken"), "messages": messages})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_template" and error["param"] == "messages.1.content"
    assert "messages[1]" in error["message"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ x|attr('__class__') }}",
        "{{ lipsum.__globals__['os'].environ }}",
        "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
        "{{ 'a' * 999999999 }}",
        "{{ 9 ** 9 ** 9 }}",
        "{{ x|center(999999999) }}",
        "{% include '/etc/passwd' %}",
        "{% set y = x %}{{ y }}",
        "{{ self }}{{ x.upper() }}",
        "{{" + "(" * 5000 + "x" + ")" * 5000 + "}}",
    ],
)
def test_hostile_template_is_refused_when_stored(
    llm_service: RunningService, template: str
) -> None:
    with llm_service.client() as client:
        response = client.post(
            "/v1/prompts", json={"slug": unique("hostile"), "messages": user(template)}
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_template" and error["param"] == "messages.0.content"
    for leaked in ("<class", "environ(", "<function", "root:"):
        assert leaked not in error["message"]


def test_names_from_the_environment_are_only_variables(
    llm_service: RunningService, upstream: StandinUpstream
) -> None:
    marker = unique("environ")
    slug = unique("reads-environ")
    with llm_service.client() as client:
        # Given templates that name what a server might hold: its environment, its config
        create_prompt(client, slug, user(f"{marker} {{{{ environ }}}} {{{{ config }}}}"))
        # When a line gives no value for them, it is refused; values given are plain data
        refused = submit(client, [prompt_line("env-1", slug, {})])
        _, output = run_batch(
            client,
            [prompt_line("env-2", slug, {"environ": "{{ 7*7 }}", "config": "{% raw %}"})],
        )
    fault = refused.json()["error"]["lines"][0]
    assert fault["param"] == "body.variables" and "'config', 'environ'" in fault["message"]
    assert output[0]["response"]["status_code"] == 200
    (call,) = upstream.calls_matching(marker)
    assert call.body["messages"] == user(f"{marker} {{{{ 7*7 }}}} {{% raw %}}")


def test_limits_are_stated_when_a_prompt_breaks_them(llm_service: RunningService) -> None:
    slug = unique("limits")
    with llm_service.client() as client:
        too_many = client.post(
            "/v1/prompts", json={"slug": slug, "messages": user("x") * 51}
        ).json()["error"]
        too_long = client.post(
            "/v1/prompts", json={"slug": slug, "messages": user("x" * (100 * 1024 + 1))}
        ).json()["error"]
        bad_slug = client.post(
            "/v1/prompts", json={"slug": "Not_A_Slug", "messages": user("x")}
        ).json()["error"]
        bad_setting = client.post(
            "/v1/prompts",
            json={"slug": slug, "messages": user("x"), "model_config": {"temprature": 1}},
        ).json()["error"]
        create_prompt(client, slug, user("v1"))
        for number in range(2, 101):
            assert add_version(client, slug, user(f"v{number}")) == number
        too_many_versions = client.post(
            f"/v1/prompts/{slug}/versions", json={"messages": user("v101")}
        )
        no_such_version = client.post(f"/v1/prompts/{slug}/publish", json={"version": 101})
    assert too_many["param"] == "messages" and "50" in too_many["message"]
    assert too_long["param"] == "messages.0.content" and "102400" in too_long["message"]
    assert bad_slug["param"] == "slug"
    assert bad_setting["param"] == "model_config.temprature"
    assert too_many_versions.status_code == 400
    assert too_many_versions.json()["error"]["code"] == "too_many_versions"
    assert "100 versions" in too_many_versions.json()["error"]["message"]
    assert no_such_version.status_code == 400
    assert no_such_version.json()["error"]["param"] == "version"


def test_a_key_holds_at_most_1000_prompts(redis_url: str, tmp_path: Path) -> None:
    # A service of its own, so its fresh keys start with no prompts.
    service = start_service(redis_url, tmp_path, workers=0)
    try:
        with service.client() as client:
            for n in range(1000):
                assert (
                    client.post(
                        "/v1/prompts", json={"slug": f"p-{n}", "messages": user("x")}
                    ).status_code
                    == 200
                )
            refused = client.post("/v1/prompts", json={"slug": "p-1000", "messages": user("x")})
            first_page = client.get("/v1/prompts").json()
            rest = client.get("/v1/prompts", params={"limit": 1000, "after": "p-998"}).json()
    finally:
        service.stop()
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "too_many_prompts"
    assert "1000 prompts" in refused.json()["error"]["message"]
    assert len(first_page["data"]) == 100 and first_page["has_more"]
    assert [item["slug"] for item in rest["data"]] == ["p-999"] and not rest["has_more"]


def test_prompt_routes_need_json(llm_service: RunningService) -> None:
    with httpx.Client(base_url=llm_service.url) as anonymous:
        assert anonymous.get("/v1/prompts").status_code == 401
    with llm_service.client() as client:
        response = client.post(
            "/v1/prompts", content=b"slug=x", headers={"content-type": "text/plain"}
        )
    assert response.status_code == 415

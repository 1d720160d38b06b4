"""Provider headers: ``x-textbatch-provider`` routes a request's lines, ``-key`` carries the
caller's own key, which reaches only that upstream and is found nowhere once the batch ends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from cryptography.fernet import Fernet

from standins.upstream import StandinUpstream
from tests.support.batches import line, output_lines, submit, to_jsonl, wait_finished
from tests.support.service import RunningService, service_env, start_service

CALLER_TOKEN = "sk-caller-own-token-5f0c2e9ab1"
WRONG_TOKEN = "sk-caller-wrong-token-77d1e04c3a"
BETA_KEY = "sk-configured-beta-key-0b8e"
SECRET_KEY = Fernet.generate_key().decode()
PROVIDER = "x-textbatch-provider"
PROVIDER_KEY = "x-textbatch-provider-key"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, StandinUpstream]]:
    """``default`` (any key), ``beta`` (any key, BYOK allowed), ``strict`` (only the caller's)."""
    with (
        StandinUpstream() as default,
        StandinUpstream() as beta,
        StandinUpstream(api_key=CALLER_TOKEN) as strict,
    ):
        yield {"default": default, "beta": beta, "strict": strict}


@pytest.fixture(scope="module")
def service(
    redis_url: str,
    upstreams: dict[str, StandinUpstream],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningService]:
    data_dir = Path(tmp_path_factory.mktemp("provider-routing"))
    named = {
        "beta": {
            "base_url": upstreams["beta"].base_url,
            "api_key": BETA_KEY,
            "byok": True,
            "model": "beta-model",
        },
        "strict": {"base_url": upstreams["strict"].base_url, "api_key": BETA_KEY, "byok": True},
        "gamma": {"base_url": upstreams["beta"].base_url, "api_key": BETA_KEY},
    }
    running = start_service(
        redis_url,
        data_dir,
        log_dir=data_dir,
        # Everything the service logs, at its most talkative, is scanned for the key.
        log_level="debug",
        upstreams=orjson.dumps(named).decode(),
        llm_base_url=upstreams["default"].base_url,
        llm_api_key="sk-configured-default-key",
        llm_model="standin-model",
        llm_max_attempts="2",
        llm_backoff_base="0.01",
        secret_key=SECRET_KEY,
        chunk_size="4",
    )
    yield running
    running.stop()


def _chat(marker: str, model: str = "echo-model") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": f"{marker} says hello"}]}


def _mixed_lines(marker: str) -> list[dict[str, Any]]:
    """A pass-through chat line, a task line, a Responses line and one with its own prefix."""
    return [
        line(f"{marker}-chat", _chat(f"{marker}-chat")),
        line(f"{marker}-task", {"model": "summarize", "text": f"{marker}-task text. More."}),
        {
            "custom_id": f"{marker}-responses",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "echo-model", "input": f"{marker}-responses input"},
        },
        line(f"{marker}-prefixed", _chat(f"{marker}-prefixed", "default/echo-model")),
    ]


def _run(
    client: httpx.Client, lines: list[dict[str, Any]], headers: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Run a batch under ``headers``; its object, output lines and every text answered."""
    created = client.post(
        "/v1/batches",
        content=to_jsonl(lines),
        headers={"content-type": "application/jsonl", **headers},
    )
    assert created.status_code == 200, created.text
    batch = wait_finished(client, created.json()["id"])
    outputs = output_lines(client, batch["id"])
    seen = [created.text, orjson.dumps(batch).decode(), orjson.dumps(outputs).decode()]
    for name in ("output_file_id", "error_file_id"):
        if batch[name]:
            seen.append(client.get(f"/v1/files/{batch[name]}/content").text)
    return batch, outputs, seen


def _received(upstream: StandinUpstream, marker: str) -> list[str | None]:
    """The Authorization of each call the upstream got whose text holds ``marker``."""
    return [
        auth
        for call, auth in zip(upstream.calls, upstream.authorizations, strict=True)
        if marker in call.text
    ]


def test_provider_header_routes_pass_through_and_task_lines_to_the_named_upstream(
    service: RunningService, upstreams: dict[str, StandinUpstream]
) -> None:
    with service.client() as client:
        batch, outputs, _ = _run(client, _mixed_lines("route"), {PROVIDER: "beta"})
        realtime_chat = client.post(
            "/v1/chat/completions", json=_chat("route-rt"), headers={PROVIDER: "beta"}
        )
        realtime_task = client.post(
            "/v1/chat/completions",
            json={
                "model": "classify",
                "text": "route-rt-task text",
                "labels": [{"name": "a", "rubric": "Is it about a?"}],
            },
            headers={PROVIDER: "beta"},
        )

    assert batch["request_counts"] == {
        "total": 4,
        "completed": 4,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert all(output["error"] is None for output in outputs)
    beta, default = upstreams["beta"], upstreams["default"]
    for marker in ("route-chat", "route-task", "route-responses", "route-rt", "route-rt-task"):
        assert _received(beta, marker), marker
        assert not _received(default, marker), marker
    # A model with its own provider prefix still goes where the prefix says.
    assert _received(default, "route-prefixed") and not _received(beta, "route-prefixed")
    assert realtime_chat.status_code == 200 and realtime_task.status_code == 200
    # Pass-through lines keep their model; task lines call the upstream's task model.
    models = {call.body["model"] for call in beta.calls_matching("route-")}
    assert models == {"echo-model", "beta-model"}
    task_calls = beta.calls_matching("route-task")
    assert task_calls and all(call.body["model"] == "beta-model" for call in task_calls)
    # The configured key went with every call, as no key of the caller's was given.
    assert set(_received(beta, "route-")) == {f"Bearer {BETA_KEY}"}


def test_unknown_provider_is_a_400_naming_the_header(service: RunningService) -> None:
    with service.client() as client:
        before = client.get("/v1/batches", params={"limit": 100}).json()["data"]
        batch = submit_with(client, _mixed_lines("unknown"), {PROVIDER: "nowhere"})
        realtime = client.post(
            "/v1/embeddings",
            json={"model": "echo-model", "input": "x"},
            headers={PROVIDER: "nowhere"},
        )
        after = client.get("/v1/batches", params={"limit": 100}).json()["data"]
    for answer in (batch, realtime):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("unknown_provider", PROVIDER)
        assert "known providers: default, beta, gamma, strict" in error["message"]
    assert len(after) == len(before)


def test_provider_key_is_refused_for_an_upstream_that_does_not_allow_it(
    service: RunningService, upstreams: dict[str, StandinUpstream]
) -> None:
    with service.client() as client:
        named = submit_with(
            client, _mixed_lines("nobyok"), {PROVIDER: "gamma", PROVIDER_KEY: CALLER_TOKEN}
        )
        # No provider named: the key would be the default upstream's, which does not allow it.
        default = client.post(
            "/v1/chat/completions", json=_chat("nobyok-rt"), headers={PROVIDER_KEY: CALLER_TOKEN}
        )
    for answer in (named, default):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert (error["code"], error["param"]) == ("provider_key_not_allowed", PROVIDER_KEY)
        assert CALLER_TOKEN not in answer.text
    assert not upstreams["beta"].calls_matching("nobyok")
    assert not upstreams["default"].calls_matching("nobyok")


def submit_with(
    client: httpx.Client, lines: list[dict[str, Any]], headers: dict[str, str]
) -> httpx.Response:
    return client.post(
        "/v1/batches",
        content=to_jsonl(lines),
        headers={"content-type": "application/jsonl", **headers},
    )


def _every_redis_value(redis_url: str) -> bytes:
    """Every key and value in the test's Redis, whatever its type."""
    stored = redis.Redis.from_url(redis_url)
    found = bytearray()
    try:
        for key in stored.scan_iter(count=1000):
            found += key + b"\n"
            kind = stored.type(key)
            if kind == b"string":
                parts: Any = [stored.get(key)]
            elif kind == b"hash":
                parts = [item for pair in stored.hgetall(key).items() for item in pair]
            elif kind == b"list":
                parts = stored.lrange(key, 0, -1)
            elif kind == b"set":
                parts = list(stored.smembers(key))
            elif kind == b"zset":
                parts = stored.zrange(key, 0, -1)
            elif kind == b"stream":
                parts = [orjson.dumps(str(entry)) for entry in stored.xrange(key)]
            else:
                parts = []
            for part in parts:
                found += (part or b"") + b"\n"
    finally:
        stored.close()
    return bytes(found)


def test_callers_key_reaches_only_its_upstream_and_is_found_nowhere_after_the_batch(
    service: RunningService, upstreams: dict[str, StandinUpstream], redis_url: str
) -> None:
    beta = upstreams["beta"]
    headers = {PROVIDER: "beta", PROVIDER_KEY: CALLER_TOKEN}
    with service.client() as client:
        beta.set_latency(0.3)
        try:
            created = submit_with(client, _mixed_lines("byok"), headers)
            assert created.status_code == 200, created.text
            batch_id = created.json()["id"]
            # While it runs the key is held, sealed: not in the clear, and opened by the secret.
            stored = redis.Redis.from_url(redis_url)
            sealed = stored.get(f"textbatch:batch:{batch_id}:provider_key")
            assert sealed is not None and CALLER_TOKEN.encode() not in sealed
            assert Fernet(SECRET_KEY.encode()).decrypt(sealed).decode() == CALLER_TOKEN
            batch = wait_finished(client, batch_id)
        finally:
            beta.set_latency(0.0)
        outputs = output_lines(client, batch_id)
        seen = [created.text, orjson.dumps(batch).decode(), orjson.dumps(outputs).decode()]
        seen += [
            client.get(f"/v1/files/{batch[name]}/content").text
            for name in ("output_file_id", "error_file_id")
            if batch[name]
        ]
        seen.append(client.get(f"/v1/batches/{batch_id}").text)
        realtime = client.post(
            "/v1/responses", json={"model": "m", "input": "byok-rt"}, headers=headers
        )
        seen.append(f"{realtime.headers} {realtime.text}")
        # The key is for that request only: the next one goes with the configured key.
        client.post(
            "/v1/responses", json={"model": "m", "input": "byok-after"}, headers={PROVIDER: "beta"}
        )
        assert stored.exists(f"textbatch:batch:{batch_id}:provider_key") == 0
        stored.close()

    assert batch["request_counts"] == {
        "total": 4,
        "completed": 4,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert realtime.status_code == 200
    for marker in ("byok-chat", "byok-task", "byok-responses", "byok-rt"):
        auths = _received(beta, marker)
        assert auths and set(auths) == {f"Bearer {CALLER_TOKEN}"}, marker
    assert set(_received(beta, "byok-after")) == {f"Bearer {BETA_KEY}"}
    # The line with its own prefix went to the default upstream with that upstream's key.
    assert set(_received(upstreams["default"], "byok-prefixed")) == {
        "Bearer sk-configured-default-key"
    }
    assert all(CALLER_TOKEN not in text for text in seen)
    assert CALLER_TOKEN.encode() not in _every_redis_value(redis_url)
    assert CALLER_TOKEN not in service.logs()


def test_wrong_provider_key_fails_lines_as_upstream_rejected_without_the_key(
    service: RunningService, upstreams: dict[str, StandinUpstream]
) -> None:
    headers = {PROVIDER: "strict", PROVIDER_KEY: WRONG_TOKEN}
    lines = [
        line("wrong-chat", _chat("wrong-chat")),
        line("wrong-task", {"model": "summarize", "text": "wrong-task text."}),
    ]
    with service.client() as client:
        batch, outputs, seen = _run(client, lines, headers)
        realtime = client.post("/v1/chat/completions", json=_chat("wrong-rt"), headers=headers)

    assert batch["request_counts"] == {
        "total": 2,
        "completed": 0,
        "failed": 2,
        "cancelled": 0,
        "expired": 0,
    }
    assert {output["error"]["code"] for output in outputs} == {"upstream_rejected"}
    by_id = {output["custom_id"]: output for output in outputs}
    assert by_id["wrong-chat"]["response"]["status_code"] == 401
    assert by_id["wrong-chat"]["response"]["body"]["error"]["code"] == "provider_key_rejected"
    assert "HTTP 401" in by_id["wrong-task"]["error"]["message"]
    # The upstream's refusal quoted the key; none of it came back.
    assert _received(upstreams["strict"], "wrong-chat") == [f"Bearer {WRONG_TOKEN}"]
    assert realtime.status_code == 401
    assert all(WRONG_TOKEN not in text for text in [*seen, realtime.text])
    assert WRONG_TOKEN not in service.logs()


@pytest.mark.parametrize(
    ("secret_key", "says"),
    [(None, "required because upstream(s) beta"), ("not-a-fernet-key", "not a valid Fernet key")],
)
def test_service_refuses_to_start_with_byok_and_no_valid_secret_key(
    redis_url: str, tmp_path: Path, secret_key: str | None, says: str
) -> None:
    upstream = {"beta": {"base_url": "http://127.0.0.1:9/v1", "byok": True}}
    settings = {"upstreams": orjson.dumps(upstream).decode()}
    if secret_key is not None:
        settings["secret_key"] = secret_key
    env, _ = service_env(redis_url, tmp_path, **settings)
    for command in ("api", "worker"):
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", command],
            env=env,
            capture_output=True,
            timeout=60,
        )
        stderr = done.stderr.decode()
        assert done.returncode == 2, stderr
        assert stderr.count("\n") == 1 and "TEXTBATCH_SECRET_KEY" in stderr and says in stderr
        if secret_key is not None:
            assert secret_key not in stderr


def test_plain_submit_still_uses_the_default_upstream(
    service: RunningService, upstreams: dict[str, StandinUpstream]
) -> None:
    with service.client() as client:
        created = submit(client, [line("plain-chat", _chat("plain-chat"))])
        assert created.status_code == 200, created.text
        batch = wait_finished(client, created.json()["id"])
    assert batch["request_counts"]["completed"] == 1
    assert _received(upstreams["default"], "plain-chat") == ["Bearer sk-configured-default-key"]


@pytest.mark.parametrize("ending", ["cancelled", "expired"])
def test_callers_key_is_deleted_when_the_batch_is_cancelled_or_expires(
    service: RunningService, upstreams: dict[str, StandinUpstream], redis_url: str, ending: str
) -> None:
    lines = [line(f"end-{ending}-{n}", _chat(f"end-{ending}-{n}")) for n in range(12)]
    headers = {PROVIDER: "beta", PROVIDER_KEY: CALLER_TOKEN}
    window = "?completion_window=1s" if ending == "expired" else ""
    stored = redis.Redis.from_url(redis_url)
    upstreams["beta"].set_latency(1.5)
    try:
        with service.client() as client:
            created = client.post(
                f"/v1/batches{window}",
                content=to_jsonl(lines),
                headers={"content-type": "application/jsonl", **headers},
            )
            assert created.status_code == 200, created.text
            batch_id = created.json()["id"]
            assert stored.exists(f"textbatch:batch:{batch_id}:provider_key") == 1
            if ending == "cancelled":
                assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
            batch = wait_finished(client, batch_id)
            outputs = output_lines(client, batch_id)
        assert batch["status"] == ending
        assert stored.exists(f"textbatch:batch:{batch_id}:provider_key") == 0
    finally:
        upstreams["beta"].set_latency(0.0)
        stored.close()
    assert CALLER_TOKEN not in orjson.dumps([batch, outputs]).decode()
    assert CALLER_TOKEN.encode() not in _every_redis_value(redis_url)


def test_a_retry_goes_to_the_originals_provider_and_asks_for_a_callers_key_again(
    service: RunningService, upstreams: dict[str, StandinUpstream]
) -> None:
    # A line that fails twice (both attempts) on beta, then would pass.
    routed = [line("again-routed", _chat("again-routed [[fail:500:2]]"))]
    keyed = [line("again-keyed", _chat("again-keyed"))]
    with service.client() as client:
        first, _, _ = _run(client, routed, {PROVIDER: "beta"})
        assert first["request_counts"]["failed"] == 1
        retried = client.post(f"/v1/batches/{first['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert wait_finished(client, retried.json()["id"])["request_counts"]["completed"] == 1
        # With a wrong key of the caller's, then again without any key: refused, nothing made.
        wrong, _, _ = _run(client, keyed, {PROVIDER: "strict", PROVIDER_KEY: WRONG_TOKEN})
        assert wrong["request_counts"]["failed"] == 1
        before = client.get("/v1/batches", params={"limit": 100}).json()["data"]
        refused = client.post(f"/v1/batches/{wrong['id']}/retry")
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "provider_key_required"
        assert client.get("/v1/batches", params={"limit": 100}).json()["data"] == before
        fixed = client.post(
            f"/v1/batches/{wrong['id']}/retry",
            headers={PROVIDER: "strict", PROVIDER_KEY: CALLER_TOKEN},
        )
        assert fixed.status_code == 200, fixed.text
        assert wait_finished(client, fixed.json()["id"])["request_counts"]["completed"] == 1
    # The routed retry went to beta again, never to the default upstream.
    assert len(_received(upstreams["beta"], "again-routed")) == 3
    assert not _received(upstreams["default"], "again-routed")
    assert _received(upstreams["strict"], "again-keyed") == [
        f"Bearer {WRONG_TOKEN}",
        f"Bearer {CALLER_TOKEN}",
    ]

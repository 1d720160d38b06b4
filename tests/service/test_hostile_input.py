"""Hostile input at the HTTP edge: refused with a 4xx in the one error shape, nothing stored.

Bodies are drawn by hypothesis (random bytes, truncated JSON, hostile values in
every field, broken multipart) and sent over real HTTP to ``POST /v1/batches``,
``POST /v1/files`` and ``POST /v1/chat/completions``; explicit cases cover the
10 MB line, 100,000 lines, deep nesting, huge numbers, NUL, lone surrogates,
invalid UTF-8, content types, compressed bodies, and every input limit's message.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import string
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.batches import line, to_jsonl
from tests.support.file_content import uploads_in_progress
from tests.support.service import RunningService, start_service

MB = 1024 * 1024
MAX_LINE_BYTES = 10 * MB  # the service's defaults
MAX_LINES = 50_000
JSONL = {"content-type": "application/jsonl"}
JSON = {"content-type": "application/json"}
ERROR_FIELDS = {"type", "code", "message", "param", "line"}
GOOD_BODY = {"model": "summarize", "text": "The quarterly report shows growth."}
CLASSIFY_BODY = {
    "model": "classify",
    "text": "Please refund the second charge.",
    "labels": [{"name": "refund", "rubric": "Does the customer ask for money back?"}],
    "instructions": "Be strict.",
    "seed": 7,
    "temperature": 0.2,
}

fuzz = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


# --- what a refusal must look like, and what must not be left behind ---------------------


def assert_refused(
    response: httpx.Response, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """A 4xx whose body is ``{"error": {"type", "code", "message", "param", "line"}}``."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) >= ERROR_FIELDS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and isinstance(error["code"], str), error
    if code is not None:
        assert error["code"] == code, error
    return error


def stored(service: RunningService, redis_url: str) -> dict[str, int]:
    """The service's batches and uploads, staged submissions, and uploads half-written.

    Batches and files are counted by owner, as other test sessions may share the Redis.
    """
    owners = {hashlib.sha256(key.encode()).hexdigest()[:32].encode() for key in service.keys}
    client = redis.Redis.from_url(redis_url)
    try:

        def keys_of(kind: str) -> list[bytes]:
            # ``textbatch:<kind>:<id>`` only: the sub-keys of a batch move while workers run.
            found = client.scan_iter(match=f"textbatch:{kind}:*", count=1000)
            return [key for key in found if key.count(b":") == 2]

        def fields_of(kind: str, *fields: str) -> list[list[bytes | None]]:
            pipe = client.pipeline(transaction=False)
            for key in keys_of(kind):
                pipe.hmget(key, list(fields))
            return pipe.execute()

        counts = {
            "batches": sum(1 for (owner,) in fields_of("batch", "owner") if owner in owners),
            # Uploads only: workers add output files as earlier tests' batches finish.
            "uploads": sum(
                1
                for owner, kind in fields_of("file", "owner", "kind")
                if owner in owners and kind in (None, b"upload")
            ),
            "staging": len(keys_of("staging")),
        }
    finally:
        client.close()
    counts["incoming"] = len(uploads_in_progress(redis_url))
    return counts


@contextmanager
def nothing_stored(service: RunningService, redis_url: str) -> Iterator[None]:
    before = stored(service, redis_url)
    yield
    assert stored(service, redis_url) == before


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@contextmanager
def memory_grows_less_than(service: RunningService, megabytes: float) -> Iterator[None]:
    assert service.api is not None
    before = rss_mb(service.api.pid)
    yield
    grown = rss_mb(service.api.pid) - before
    assert grown < megabytes, f"the API grew by {grown:.0f} MB"


def post(
    service: RunningService, path: str, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    with service.client() as client:
        return client.post(path, content=content, headers=headers)


# --- strategies -----------------------------------------------------------------------------

HOLE = "\x01hole\x01"
# Raw JSON text no parser should take at face value, or that must be refused by a rule.
HOSTILE_TOKENS = [
    b"1e400",
    b"-1e400",
    str(2**70).encode(),
    str(-(2**70)).encode(),
    str(2**64 - 1).encode(),
    b"NaN",
    b"Infinity",
    b"-0",
    b'"\\ud800"',
    b'"a\\udfffb"',
    b'"a\\u0000b"',
    b'"a\x00b"',
    b'"caf\xe9"',
    b'"\xff\xfe"',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b'""',
    b'"   "',
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"[{}]",
    b'"' + b"x" * 5000 + b'"',
    b'{"' + b"k" * 300 + b'": 1}',
    b"[" + b"{}," * 3000 + b"{}]",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Stdlib JSON keeps big integers exact and escapes lone surrogates, as a hostile client would.
hostile_tokens = st.sampled_from(HOSTILE_TOKENS) | json_values.map(lambda v: json.dumps(v).encode())


def with_hole(template: dict[str, Any], path: tuple[str | int, ...]) -> bytes:
    """The template as JSON with the value at ``path`` (added if missing) left as a hole."""
    document = orjson.loads(orjson.dumps(template))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = HOLE
    return orjson.dumps(document)


def fill(raw: bytes, token: bytes) -> bytes:
    return raw.replace(orjson.dumps(HOLE), token)


LINE_TEMPLATE = line("c-1", CLASSIFY_BODY)
LINE_HOLES: list[tuple[str | int, ...]] = [
    ("custom_id",),
    ("method",),
    ("url",),
    ("body",),
    ("extra",),
    ("body", "model"),
    ("body", "text"),
    ("body", "labels"),
    ("body", "labels", 0),
    ("body", "labels", 0, "name"),
    ("body", "labels", 0, "rubric"),
    ("body", "instructions"),
    ("body", "seed"),
    ("body", "temperature"),
    ("body", "top_p"),
    ("body", "entities"),
    ("body", "max_tokens"),
]


@st.composite
def hostile_lines(draw: st.DrawFn) -> bytes:
    hole = draw(st.sampled_from(LINE_HOLES))
    return fill(with_hole(LINE_TEMPLATE, hole), draw(hostile_tokens))


@st.composite
def truncated(draw: st.DrawFn, document: bytes) -> bytes:
    """A proper prefix of a JSON object: never valid JSON."""
    return document[: draw(st.integers(min_value=1, max_value=len(document) - 1))]


valid_lines = st.integers(min_value=1, max_value=10**6).map(
    lambda n: orjson.dumps(line(f"ok-{n}", GOOD_BODY))
)


# --- fuzzing the three endpoints ------------------------------------------------------------


@fuzz
@given(
    lines=st.lists(st.one_of(hostile_lines(), st.binary(max_size=200), valid_lines), max_size=6),
    broken=truncated(orjson.dumps(LINE_TEMPLATE)),
    position=st.integers(min_value=0, max_value=6),
    crlf=st.booleans(),
)
def test_jsonl_batch_with_a_hostile_line_is_refused_whole(
    llm_service: RunningService,
    redis_url: str,
    lines: list[bytes],
    broken: bytes,
    position: int,
    crlf: bool,
) -> None:
    lines.insert(position, broken)
    body = (b"\r\n" if crlf else b"\n").join(lines)
    with nothing_stored(llm_service, redis_url):
        response = post(llm_service, "/v1/batches", body, JSONL)
    error = assert_refused(response, 400, "invalid_batch")
    assert error["lines"] and error["line"] == error["lines"][0]["line"]
    for fault in error["lines"]:
        assert {"line", "custom_id", "param", "code", "message"} <= set(fault)
        assert len(fault["message"]) < 2000


@fuzz
@given(body=st.one_of(hostile_lines(), st.binary(max_size=400)))
def test_jsonl_line_alone_never_breaks_the_service(
    llm_service: RunningService, redis_url: str, body: bytes
) -> None:
    before = stored(llm_service, redis_url)
    response = post(llm_service, "/v1/batches", body, JSONL)
    if response.status_code == 200:
        return  # e.g. NUL or a big number inside text: hostile to look at, valid to run
    assert_refused(response, 400)
    assert stored(llm_service, redis_url) == before


# ``endpoint`` and ``completion_window`` have their own tests at the end.
JSON_BATCH_TEMPLATE = {
    "requests": [line("c-1", GOOD_BODY)],
    "metadata": {"team": "docs"},
}
JSON_BATCH_HOLES: list[tuple[str | int, ...]] = [
    ("requests",),
    ("requests", 0),
    ("requests", 1),
    ("metadata",),
    ("metadata", "team"),
    ("metadata", "x" * 70),
    ("input_file_id",),
    ("unknown",),
]


@st.composite
def hostile_json_batches(draw: st.DrawFn) -> bytes:
    document = dict(JSON_BATCH_TEMPLATE)
    hole = draw(st.sampled_from(JSON_BATCH_HOLES))
    if hole == ("requests", 1):
        document["requests"] = [*document["requests"], None]
    return fill(with_hole(document, hole), draw(hostile_tokens))


@fuzz
@given(
    body=st.one_of(
        hostile_json_batches(),
        truncated(orjson.dumps(JSON_BATCH_TEMPLATE)),
        st.binary(max_size=300),
        hostile_tokens,
    )
)
def test_json_batch_body_never_breaks_the_service(
    llm_service: RunningService, redis_url: str, body: bytes
) -> None:
    before = stored(llm_service, redis_url)
    response = post(llm_service, "/v1/batches", body, JSON)
    if response.status_code == 200:
        return
    assert_refused(response)
    assert stored(llm_service, redis_url) == before


# An unknown field makes every task body invalid, so each drawn body must be refused.
REALTIME_TEMPLATE = {**CLASSIFY_BODY, "colour": "blue"}
REALTIME_HOLES: list[tuple[str | int, ...]] = [
    hole[1:] for hole in LINE_HOLES if hole[:1] == ("body",) and len(hole) > 1
]


@st.composite
def hostile_realtime_bodies(draw: st.DrawFn) -> bytes:
    hole = draw(st.sampled_from(REALTIME_HOLES))
    return fill(with_hole(REALTIME_TEMPLATE, hole), draw(hostile_tokens))


@fuzz
@given(
    body=st.one_of(
        hostile_realtime_bodies(),
        truncated(orjson.dumps(CLASSIFY_BODY)),
        st.binary(max_size=300),
        hostile_tokens,
    ),
    path=st.sampled_from(["/v1/chat/completions", "/v1/embeddings", "/v1/completions"]),
)
def test_hostile_realtime_body_is_refused(
    llm_service: RunningService, body: bytes, path: str
) -> None:
    assert_refused(post(llm_service, path, body, JSON), 400)


media_types = st.from_regex(r"[a-z]{1,12}/[a-z0-9.+-]{1,24}", fullmatch=True)


@fuzz
@given(
    content_type=media_types.filter(lambda t: t != "application/json" and not t.endswith("+json"))
)
def test_realtime_refuses_any_other_content_type(
    llm_service: RunningService, content_type: str
) -> None:
    response = post(
        llm_service, "/v1/chat/completions", orjson.dumps(GOOD_BODY), {"content-type": content_type}
    )
    assert_refused(response, 415, "unsupported_media_type")


@fuzz
@given(
    content_type=media_types.filter(
        lambda t: (
            t not in {"application/json", "application/jsonl", "application/x-ndjson"}
            and not t.startswith(("application/jsonl", "application/x-jsonl"))
        )
    )
)
def test_batches_refuse_any_other_content_type(
    llm_service: RunningService, redis_url: str, content_type: str
) -> None:
    with nothing_stored(llm_service, redis_url):
        response = post(
            llm_service,
            "/v1/batches",
            to_jsonl([line("a", GOOD_BODY)]),
            {"content-type": content_type},
        )
    assert_refused(response, 415, "unsupported_media_type")


header_text = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=80)


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body that may lie about its boundary, parts, names or end."""
    boundary = draw(st.from_regex(r"[A-Za-z0-9'()+_,.-]{1,70}", fullmatch=True))
    parts = []
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        name = draw(st.sampled_from(["file", "purpose", "other"]) | header_text)
        disposition = f'form-data; name="{name}"'
        if draw(st.booleans()):
            filename = draw(header_text | st.just("../../etc/passwd") | st.just("a\\b\\c.jsonl"))
            disposition += f'; filename="{filename}"'
        headers = f"Content-Disposition: {disposition}\r\n"
        if draw(st.booleans()):
            headers += f"Content-Type: {draw(header_text)}\r\n"
        content = draw(st.binary(max_size=300) | st.sampled_from([b"batch", b"assistants", b""]))
        parts.append(b"--" + boundary.encode() + b"\r\n" + headers.encode() + b"\r\n" + content)
    body = b"\r\n".join(parts) + b"\r\n--" + boundary.encode() + b"--\r\n"
    if draw(st.booleans()):
        body = body[: draw(st.integers(min_value=0, max_value=len(body)))]
    declared = draw(st.sampled_from([boundary, boundary + "x", ""]))
    content_type = (
        f"multipart/form-data; boundary={declared}" if declared else "multipart/form-data"
    )
    return body, content_type


@fuzz
@given(upload=multipart_bodies())
def test_hostile_upload_is_refused_or_stored_whole(
    llm_service: RunningService, redis_url: str, upload: tuple[bytes, str]
) -> None:
    body, content_type = upload
    before = stored(llm_service, redis_url)
    with llm_service.client() as client:
        response = client.post("/v1/files", content=body, headers={"content-type": content_type})
        if response.status_code == 200:
            # Any bytes may be uploaded; they are judged when a batch reads them.
            assert client.delete(f"/v1/files/{response.json()['id']}").status_code == 200
            return
    assert_refused(response)
    assert stored(llm_service, redis_url) == before


# --- the 10 MB line, 100,000 lines, and memory ------------------------------------------------


def padded_line(size: int, custom_id: str) -> bytes:
    """A valid embeddings pass-through line of exactly ``size`` bytes."""
    skeleton = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "embed-model", "input": ""},
    }
    empty = orjson.dumps(skeleton)
    skeleton["body"]["input"] = "x" * (size - len(empty))
    raw = orjson.dumps(skeleton)
    assert len(raw) == size
    return raw


def test_line_just_over_10_mb_is_named_line_too_large(
    llm_service: RunningService, redis_url: str
) -> None:
    body = (
        to_jsonl([line("first", GOOD_BODY)])
        + padded_line(MAX_LINE_BYTES + 1, "big")
        + b"\n"
        + to_jsonl([line("last", GOOD_BODY)])
    )
    with nothing_stored(llm_service, redis_url), memory_grows_less_than(llm_service, 100):
        response = post(llm_service, "/v1/batches", body, JSONL)
    error = assert_refused(response, 400, "invalid_batch")
    assert [(fault["line"], fault["code"]) for fault in error["lines"]] == [(2, "line_too_large")]
    assert f"{MAX_LINE_BYTES} bytes" in error["lines"][0]["message"]


def test_line_of_exactly_10_mb_is_accepted_even_with_crlf(llm_service: RunningService) -> None:
    body = padded_line(MAX_LINE_BYTES, "exact") + b"\r\n" + to_jsonl([line("small", GOOD_BODY)])
    with llm_service.client() as client:
        response = client.post("/v1/batches", content=body, headers=JSONL)
        assert response.status_code == 200, response.text[:500]
        batch = response.json()
        assert batch["request_counts"]["total"] == 2
        client.post(f"/v1/batches/{batch['id']}/cancel")


def test_100_000_tiny_lines_is_413_with_bounded_memory(
    llm_service: RunningService, redis_url: str
) -> None:
    body = b"".join(
        orjson.dumps(line(f"n-{n}", {"model": "summarize", "text": "t"})) + b"\n"
        for n in range(100_000)
    )
    with nothing_stored(llm_service, redis_url), memory_grows_less_than(llm_service, 100):
        response = post(llm_service, "/v1/batches", body, JSONL)
    error = assert_refused(response, 413, "payload_too_large")
    assert f"{MAX_LINES} lines" in error["message"]
    assert error["line"] == MAX_LINES + 1


def test_100_000_blank_lines_is_413(llm_service: RunningService, redis_url: str) -> None:
    body = b"\n" * 100_000 + to_jsonl([line("late", GOOD_BODY)])
    with nothing_stored(llm_service, redis_url):
        response = post(llm_service, "/v1/batches", body, JSONL)
    error = assert_refused(response, 413, "payload_too_large")
    assert f"{MAX_LINES} blank lines" in error["message"]


def test_a_million_labels_in_one_line_is_refused_within_bounded_memory(
    llm_service: RunningService, redis_url: str
) -> None:
    many = line("many", {"model": "classify", "text": "t", "labels": [{}] * 1_000_000})
    with nothing_stored(llm_service, redis_url), memory_grows_less_than(llm_service, 200):
        response = post(llm_service, "/v1/batches", to_jsonl([many]), JSONL)
    error = assert_refused(response, 400, "invalid_batch")
    assert error["lines"][0]["message"].endswith("1000000 labels given; the limit is 100")


def test_a_million_unknown_fields_cost_one_fault(
    llm_service: RunningService, redis_url: str
) -> None:
    body = {**GOOD_BODY, **{f"k{n}": 0 for n in range(500_000)}}
    wide_line = {**line("wide", GOOD_BODY), **{f"x{n}": 0 for n in range(500_000)}}
    # The work stays bounded because the faults are: one message per body, 20 per line
    # and a count (timings are the bench's business, not an assertion here).
    with nothing_stored(llm_service, redis_url):
        as_body = post(llm_service, "/v1/batches", to_jsonl([line("wide", body)]), JSONL)
        as_line = post(llm_service, "/v1/batches", to_jsonl([wide_line]), JSONL)
        realtime = post(llm_service, "/v1/chat/completions", orjson.dumps(body), JSON)
    faults = assert_refused(as_body, 400)["lines"]
    assert [fault["message"] for fault in faults] == [
        "Value error, 500000 unknown fields given; unknown fields are not allowed"
    ]
    faults = assert_refused(as_line, 400)["lines"]
    assert len(faults) == 21 and faults[-1]["message"].startswith("... and 499980 more")
    assert "500000 unknown fields" in assert_refused(realtime, 400)["message"]


# --- one hostile thing at a time, on each endpoint ---------------------------------------------

DEEP = b"[" * 100_000


def jsonl_with(raw_line: bytes) -> bytes:
    return to_jsonl([line("good", GOOD_BODY)]) + raw_line + b"\n"


def line_bytes(body_json: bytes) -> bytes:
    return (
        b'{"custom_id":"h-1","method":"POST","url":"/v1/chat/completions","body":'
        + body_json
        + b"}"
    )


CASES: list[tuple[str, bytes, bytes, str]] = [
    # name, realtime body, batch line, what the message must say
    ("deep nesting", DEEP, DEEP, "not valid JSON"),
    ("deep objects", b'{"a":' * 100_000, b'{"a":' * 100_000, "not valid JSON"),
    ("1e400", b'{"model":"summarize","text":"t","seed":1e400}', b"", "not valid JSON"),
    ("2**70 seed", b'{"model":"summarize","text":"t","seed":%d}' % 2**70, b"", "integer"),
    (
        "2**64-1 max_tokens",
        b'{"model":"summarize","text":"t","max_tokens":%d}' % (2**64 - 1),
        b"",
        "1000000",
    ),
    ("raw NUL", b'{"model":"summarize","text":"a\x00b"}', b"", "not valid JSON"),
    ("lone surrogate", b'{"model":"summarize","text":"\\ud800"}', b"", "not valid JSON"),
    ("invalid UTF-8", b'{"model":"summarize","text":"\xff\xfe"}', b"", "not valid UTF-8"),
    ("truncated", b'{"model":"summarize","te', b"", "not valid JSON"),
    ("not an object", b"[1, 2, 3]", b"", "object"),
    ("a bare string", b'"summarize"', b"", "object"),
]


@pytest.mark.parametrize(("name", "body", "raw_line", "says"), CASES, ids=[c[0] for c in CASES])
def test_hostile_realtime_body_is_400_saying_why(
    llm_service: RunningService, name: str, body: bytes, raw_line: bytes, says: str
) -> None:
    error = assert_refused(post(llm_service, "/v1/chat/completions", body, JSON), 400)
    assert says in error["message"], error


@pytest.mark.parametrize(("name", "body", "raw_line", "says"), CASES, ids=[c[0] for c in CASES])
def test_hostile_batch_line_is_named_saying_why(
    llm_service: RunningService, redis_url: str, name: str, body: bytes, raw_line: bytes, says: str
) -> None:
    raw = raw_line or (body if not body.startswith(b"{") else line_bytes(body))
    with nothing_stored(llm_service, redis_url):
        response = post(llm_service, "/v1/batches", jsonl_with(raw), JSONL)
    error = assert_refused(response, 400, "invalid_batch")
    assert [fault["line"] for fault in error["lines"]] == [2]
    assert says in error["lines"][0]["message"], error


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"requests": [' + b"[" * 100_000 + b"]}",
        b'{"requests": "\\ud800"}',
        b"\xff",
        b'{"req',
    ],
    ids=["deep", "deep requests", "lone surrogate", "invalid UTF-8", "truncated"],
)
def test_hostile_json_batch_body_is_400(
    llm_service: RunningService, redis_url: str, body: bytes
) -> None:
    with nothing_stored(llm_service, redis_url):
        assert_refused(post(llm_service, "/v1/batches", body, JSON), 400)


def test_nul_in_custom_id_is_named(llm_service: RunningService, redis_url: str) -> None:
    raw = orjson.dumps(line("a\x00b", GOOD_BODY))
    with nothing_stored(llm_service, redis_url):
        response = post(llm_service, "/v1/batches", jsonl_with(raw), JSONL)
    error = assert_refused(response, 400, "invalid_batch")
    assert error["lines"][0]["param"] == "custom_id"


def test_long_custom_id_is_not_echoed_whole(llm_service: RunningService) -> None:
    raw = orjson.dumps(line("x" * 100_000, GOOD_BODY))
    response = post(llm_service, "/v1/batches", jsonl_with(raw), JSONL)
    fault = assert_refused(response, 400, "invalid_batch")["lines"][0]
    assert fault["param"] == "custom_id" and len(fault["custom_id"]) <= 65
    assert len(response.content) < 5000


# --- content types, encodings, empty bodies ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/batches", "text/plain"),
        ("/v1/batches", "application/xml"),
        ("/v1/batches", "multipart/form-data; boundary=x"),
        ("/v1/batches", ""),
        ("/v1/chat/completions", "text/plain"),
        ("/v1/chat/completions", "application/x-www-form-urlencoded"),
        ("/v1/chat/completions", "application/jsonl"),
        ("/v1/chat/completions", ""),
        ("/v1/embeddings", "text/plain"),
        ("/v1/files", "application/json"),
        ("/v1/files", "multipart/form-data"),
        ("/v1/files", ""),
    ],
)
def test_wrong_content_type_is_415(
    llm_service: RunningService, redis_url: str, path: str, content_type: str
) -> None:
    with nothing_stored(llm_service, redis_url):
        response = post(
            llm_service, path, to_jsonl([line("a", GOOD_BODY)]), {"content-type": content_type}
        )
    error = assert_refused(response, 415, "unsupported_media_type")
    assert error["param"] == "content-type"


def gzip_bomb() -> bytes:
    """About 100 KB of gzip that inflates to 100 MB (concatenated members are one stream)."""
    return gzip.compress(b"\0" * 10 * MB, compresslevel=9) * 10


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/batches", "application/jsonl"),
        ("/v1/batches", "application/json"),
        ("/v1/chat/completions", "application/json"),
        ("/v1/embeddings", "application/json"),
        ("/v1/files", "multipart/form-data; boundary=x"),
    ],
)
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "identity, gzip"])
def test_compressed_body_is_415_and_never_inflated(
    llm_service: RunningService, redis_url: str, path: str, content_type: str, encoding: str
) -> None:
    with nothing_stored(llm_service, redis_url), memory_grows_less_than(llm_service, 20):
        response = post(
            llm_service,
            path,
            gzip_bomb(),
            {"content-type": content_type, "content-encoding": encoding},
        )
    error = assert_refused(response, 415, "unsupported_media_type")
    assert error["param"] == "content-encoding" and "Content-Encoding" in error["message"]


def test_identity_encoding_is_accepted(llm_service: RunningService) -> None:
    response = post(
        llm_service,
        "/v1/chat/completions",
        orjson.dumps(GOOD_BODY),
        {"content-type": "application/json", "content-encoding": "identity"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "content_type", "code"),
    [
        ("/v1/batches", "application/jsonl", "empty_batch"),
        ("/v1/batches", "application/json", "invalid_request"),
        ("/v1/chat/completions", "application/json", "invalid_request"),
        ("/v1/completions", "application/json", "invalid_request"),
        ("/v1/files", "multipart/form-data; boundary=x", "invalid_request"),
    ],
)
def test_empty_body_is_400(
    llm_service: RunningService, redis_url: str, path: str, content_type: str, code: str
) -> None:
    with nothing_stored(llm_service, redis_url):
        response = post(llm_service, path, b"", {"content-type": content_type})
    assert_refused(response, 400, code)


# --- headers, paths, parameters, methods --------------------------------------------------------


def test_huge_api_key_is_401(llm_service: RunningService) -> None:
    response = httpx.get(f"{llm_service.url}/v1/batches", headers={"x-api-key": "k" * 32_000})
    assert_refused(response, 401, "invalid_api_key")


@pytest.mark.parametrize(
    "batch_id",
    ["%00", "%ff%fe", "..%2F..%2Fetc%2Fpasswd", "a" * 5000, "%E2%80%AE", "*", "batch_x%0A"],
)
@pytest.mark.parametrize("suffix", ["", "/output", "/cancel"])
def test_odd_batch_ids_are_404(llm_service: RunningService, batch_id: str, suffix: str) -> None:
    with llm_service.client() as client:
        response = (client.post if suffix == "/cancel" else client.get)(
            f"/v1/batches/{batch_id}{suffix}"
        )
    assert_refused(response, 404, "not_found")


@pytest.mark.parametrize("file_id", ["%00", "..%2F..%2Fetc%2Fpasswd", "f" * 5000, "%ff"])
@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/content"), ("DELETE", "")])
def test_odd_file_ids_are_404(
    llm_service: RunningService, file_id: str, method: str, suffix: str
) -> None:
    with llm_service.client() as client:
        response = client.request(method, f"/v1/files/{file_id}{suffix}")
    assert_refused(response, 404, "not_found")


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=0", "limit=101", f"limit={10**30}", "limit=1e3", "limit=%00"]
)
def test_bad_query_parameter_is_400_naming_it(llm_service: RunningService, query: str) -> None:
    with llm_service.client() as client:
        response = client.get(f"/v1/batches?{query}")
    assert assert_refused(response, 400, "invalid_request")["param"] == "limit"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing-here", 404),
        ("POST", "/v1/batches/x/y/z", 404),
        ("PUT", "/v1/batches", 405),
        ("DELETE", "/v1/chat/completions", 405),
        ("OPTIONS", "/v1/files", 405),
        ("PATCH", "/v1/files/x", 405),
    ],
)
def test_unknown_routes_and_methods_answer_the_error_shape(
    llm_service: RunningService, method: str, path: str, status: int
) -> None:
    with llm_service.client() as client:
        response = client.request(method, path, content=b"{}")
    assert_refused(response, status)


# --- every limit exists and says what it is ------------------------------------------------------


@pytest.fixture(scope="module")
def tight_service(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("tight")),
        max_body_bytes="60000",
        max_lines="5",
        max_line_bytes="20000",
        max_text_chars="1000",
    )
    yield service
    service.stop()


def summarize(custom_id: str, text: str = "A short text.") -> dict[str, Any]:
    return line(custom_id, {"model": "summarize", "text": text})


def test_body_over_the_limit_is_413(tight_service: RunningService, redis_url: str) -> None:
    body = b"".join(padded_line(15_000, f"p-{n}") + b"\n" for n in range(5))
    with nothing_stored(tight_service, redis_url):
        response = post(tight_service, "/v1/batches", body, JSONL)
    assert "60000 bytes" in assert_refused(response, 413, "payload_too_large")["message"]


def test_line_count_over_the_limit_is_413(tight_service: RunningService, redis_url: str) -> None:
    with nothing_stored(tight_service, redis_url):
        response = post(
            tight_service, "/v1/batches", to_jsonl([summarize(f"n-{n}") for n in range(6)]), JSONL
        )
    error = assert_refused(response, 413, "payload_too_large")
    assert "5 lines" in error["message"] and error["line"] == 6


def test_inline_requests_over_the_line_count_are_413(
    tight_service: RunningService, redis_url: str
) -> None:
    payload = {"requests": [summarize(f"n-{n}") for n in range(6)]}
    with nothing_stored(tight_service, redis_url):
        response = post(tight_service, "/v1/batches", orjson.dumps(payload), JSON)
    assert "5" in assert_refused(response, 413, "payload_too_large")["message"]


def test_line_over_the_size_limit_is_named(tight_service: RunningService, redis_url: str) -> None:
    big = summarize("big", "x" * 25_000)
    with nothing_stored(tight_service, redis_url):
        response = post(tight_service, "/v1/batches", to_jsonl([summarize("a"), big]), JSONL)
    fault = assert_refused(response, 400, "invalid_batch")["lines"][0]
    assert (fault["line"], fault["code"]) == (2, "line_too_large")
    assert "20000 bytes" in fault["message"]


def test_text_over_the_limit_is_named(tight_service: RunningService, redis_url: str) -> None:
    with nothing_stored(tight_service, redis_url):
        response = post(
            tight_service, "/v1/batches", to_jsonl([summarize("long", "x" * 1001)]), JSONL
        )
    fault = assert_refused(response, 400, "invalid_batch")["lines"][0]
    assert fault["param"] == "body.text" and "the limit is 1000" in fault["message"]
    realtime = post(
        tight_service, "/v1/chat/completions", orjson.dumps({**GOOD_BODY, "text": "x" * 1001}), JSON
    )
    assert "the limit is 1000" in assert_refused(realtime, 400)["message"]


def test_labels_and_entities_over_the_limit_are_named(
    tight_service: RunningService, redis_url: str
) -> None:
    labels = [{"name": f"l{n}", "rubric": "Is it?"} for n in range(101)]
    entities = {f"e{n}": "a thing" for n in range(101)}
    lines = [
        line("labels", {"model": "classify", "text": "t", "labels": labels}),
        line("entities", {"model": "extract", "text": "t", "entities": entities}),
    ]
    with nothing_stored(tight_service, redis_url):
        response = post(tight_service, "/v1/batches", to_jsonl(lines), JSONL)
    faults = assert_refused(response, 400, "invalid_batch")["lines"]
    assert [(fault["line"], fault["param"]) for fault in faults] == [
        (1, "body.labels"),
        (2, "body.entities"),
    ]
    assert "101 labels given; the limit is 100" in faults[0]["message"]
    assert "101 entity labels given; the limit is 100" in faults[1]["message"]


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({f"k{n}": "v" for n in range(17)}, "at most 16 keys"),
        ({"k" * 65: "v"}, "at most 64 characters"),
        ({"k": "v" * 513}, "at most 512 characters"),
        ({"k": 1}, "strings"),
        ([["k", "v"]], "object"),
    ],
)
def test_metadata_over_a_limit_is_400(
    tight_service: RunningService, redis_url: str, metadata: Any, says: str
) -> None:
    payload = {"requests": [summarize("a")], "metadata": metadata}
    with nothing_stored(tight_service, redis_url):
        response = post(tight_service, "/v1/batches", orjson.dumps(payload), JSON)
    error = assert_refused(response, 400, "invalid_request")
    assert error["param"].startswith("metadata") and says in error["message"]


def test_json_bodies_get_the_line_limit(tight_service: RunningService, redis_url: str) -> None:
    payload = {"requests": [summarize(f"n-{n}", "x" * 900) for n in range(5)] * 5}
    body = orjson.dumps(payload)
    assert 20_000 < len(body) < 60_000
    with nothing_stored(tight_service, redis_url):
        as_batch = post(tight_service, "/v1/batches", body, JSON)
        realtime = post(tight_service, "/v1/chat/completions", body, JSON)
    for response in (as_batch, realtime):
        assert "20000 bytes" in assert_refused(response, 413, "payload_too_large")["message"]


def test_upload_over_the_limit_is_413(tight_service: RunningService, redis_url: str) -> None:
    with nothing_stored(tight_service, redis_url), tight_service.client() as client:
        response = client.post(
            "/v1/files",
            files={"file": ("big.jsonl", b"x" * 70_000)},
            data={"purpose": "batch"},
        )
    assert "60000 bytes" in assert_refused(response, 413, "payload_too_large")["message"]


def test_blank_lines_over_the_limit_are_413(tight_service: RunningService, redis_url: str) -> None:
    with nothing_stored(tight_service, redis_url):
        response = post(tight_service, "/v1/batches", b"\n" * 6 + to_jsonl([summarize("a")]), JSONL)
    assert "5 blank lines" in assert_refused(response, 413, "payload_too_large")["message"]


def test_upload_with_too_many_parts_is_400(llm_service: RunningService, redis_url: str) -> None:
    part = b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
    body = part * 1000 + b"--x--\r\n"
    with nothing_stored(llm_service, redis_url):
        response = post(
            llm_service, "/v1/files", body, {"content-type": "multipart/form-data; boundary=x"}
        )
    assert "16 parts" in assert_refused(response, 400)["message"]


def test_upload_with_a_huge_part_header_is_400(llm_service: RunningService, redis_url: str) -> None:
    body = (
        b'--x\r\nContent-Disposition: form-data; name="'
        + b"n" * 100_000
        + b'"\r\n\r\nv\r\n--x--\r\n'
    )
    with nothing_stored(llm_service, redis_url):
        response = post(
            llm_service, "/v1/files", body, {"content-type": "multipart/form-data; boundary=x"}
        )
    assert "header" in assert_refused(response, 400)["message"]


# --- batch options of the wrong type or size ---------------------------------------------------


@pytest.mark.parametrize("endpoint", [[], {}], ids=["list", "object"])
def test_json_batch_with_a_non_string_endpoint_is_400(
    llm_service: RunningService, endpoint: Any
) -> None:
    payload = {"requests": [summarize("a")], "endpoint": endpoint}
    response = post(llm_service, "/v1/batches", orjson.dumps(payload), JSON)
    assert_refused(response, 400)


def test_json_batch_with_a_5000_digit_window_is_400(llm_service: RunningService) -> None:
    payload = {"requests": [summarize("a")], "completion_window": "1" + "0" * 5000 + "h"}
    response = post(llm_service, "/v1/batches", orjson.dumps(payload), JSON)
    assert_refused(response, 400)

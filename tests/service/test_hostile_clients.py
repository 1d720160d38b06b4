"""Hostile clients against a running service: huge headers, slow clients, many templates,
deep nesting and odd ids.

Each test talks to real ``textbatch`` processes, over raw sockets where a
client must misbehave in ways an HTTP library will not. The service here has
short connection deadlines (headers 1.5 s, a body 1.5 s between bytes and 6 s
in all) and small template bounds, so the tests see them act in seconds.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from standins.upstream import StandinUpstream
from tests.conftest import UPSTREAM_KEY
from tests.service.test_hostile_input import nothing_stored, rss_mb, stored
from tests.support.batches import line, submit, to_jsonl, wait_finished
from tests.support.file_content import uploads_in_progress
from tests.support.prompts import create_prompt, prompt_line, unique, user
from tests.support.service import RunningService, start_service

MB = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024  # the default
HEADER_TIMEOUT = 1.5
BODY_IDLE_TIMEOUT = 1.5
BODY_TIMEOUT = 6.0
# Far past every deadline above: a connection still open then was never going to close.
GIVE_UP_AFTER = 30.0
MAX_JSON_DEPTH = 64  # the default
TEMPLATE_CHARS_PER_KEY = 60_000
TEMPLATE_CHARS_PER_REQUEST = 20_000
JSONL = {"content-type": "application/jsonl"}
PASS_THROUGH = {"model": "echo-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def service(
    redis_url: str, upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    running = start_service(
        redis_url,
        Path(tmp_path_factory.mktemp("hostile-clients")),
        llm_base_url=upstream.base_url,
        llm_api_key=UPSTREAM_KEY,
        llm_model="standin-model",
        header_timeout=str(HEADER_TIMEOUT),
        body_idle_timeout=str(BODY_IDLE_TIMEOUT),
        body_timeout=str(BODY_TIMEOUT),
        template_cache_chars_per_key=str(TEMPLATE_CHARS_PER_KEY),
        template_cache_chars=str(10 * TEMPLATE_CHARS_PER_KEY),
        max_template_chars_per_request=str(TEMPLATE_CHARS_PER_REQUEST),
    )
    yield running
    running.stop()


# --- raw HTTP ----------------------------------------------------------------------------


def connect(service: RunningService) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=GIVE_UP_AFTER)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    received = bytearray()
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received)


def exchange(service: RunningService, request: bytes) -> bytes:
    """Send ``request`` whole, then read until the server closes the connection."""
    with connect(service) as sock:
        # Refused part-way through, the sending may fail; the answer is still to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        return read_until_closed(sock)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def error_of(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    error: dict[str, Any] = orjson.loads(body)["error"]
    assert set(error) >= {"type", "code", "message", "param", "line"}, error
    return error


def trickle(sock: socket.socket, drip: bytes, every: float = 0.3) -> tuple[bytes, int]:
    """Send ``drip`` a byte at a time until the server answers or closes, or it runs out.

    Returns what the server sent and how many bytes of ``drip`` went out.
    """
    sock.settimeout(every)
    deadline = time.monotonic() + GIVE_UP_AFTER
    sent = 0
    while sent < len(drip) and time.monotonic() < deadline:
        try:
            first = sock.recv(65536)
        except TimeoutError:
            first = None
        except ConnectionResetError:
            return b"", sent
        if first is not None:
            sock.settimeout(GIVE_UP_AFTER)
            return first + read_until_closed(sock) if first else b"", sent
        try:
            sock.send(drip[sent : sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
    sock.settimeout(GIVE_UP_AFTER)
    return read_until_closed(sock), sent


def request_head(
    method: str, path: str, headers: dict[str, str], content_length: int | None = None
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if content_length is not None:
        lines.append(f"content-length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def eventually(check: Any, within: float = 15.0) -> bool:
    """Whether ``check()`` holds now or becomes true within ``within`` seconds.

    For clean-up the server finishes just after it has answered.
    """
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def healthy(service: RunningService) -> bool:
    return httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200


# --- 9: header size ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("x-big", "a" * MB)],
        [("x-big", "a" * 8 * MB)],
        [(f"x-many-{n}", "b" * 1000) for n in range(100)],
    ],
    ids=["one 1 MB header", "one 8 MB header", "100 headers of 1 KB"],
)
def test_headers_over_the_limit_get_431_without_a_key(
    service: RunningService, headers: list[tuple[str, str]]
) -> None:
    # Given a request, with no API key, whose headers come to more than 64 KB
    request = request_head("GET", "/v1/batches", dict(headers))

    # When it is sent
    response = exchange(service, request)

    # Then it is refused with a 431 in the API's error shape, and the service is unharmed
    assert status_of(response) == 431, response[:300]
    error = error_of(response)
    assert error["code"] == "request_headers_too_large"
    assert str(MAX_HEADER_BYTES) in error["message"]
    assert healthy(service)


def test_headers_under_the_limit_are_served(service: RunningService) -> None:
    # Given a request whose headers come to about 60 KB, under the 64 KB limit
    headers = {f"x-fill-{n}": "c" * 1000 for n in range(58)}

    # When it is sent with a key
    with service.client() as client:
        response = client.get("/v1/batches", headers=headers)

    # Then it is served as usual
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "list"


def test_concurrent_32_mb_headers_do_not_grow_the_api(service: RunningService) -> None:
    assert service.api is not None
    request = request_head("GET", "/healthz", {"x-huge": "d" * 32 * MB})
    answers: list[bytes] = []
    before = rss_mb(service.api.pid)

    # When four clients send a 32 MB header at once
    threads = [
        threading.Thread(target=lambda: answers.append(exchange(service, request)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each is refused with a 431, and the API holds none of those headers
    assert [status_of(answer) for answer in answers] == [431] * 4
    grown = rss_mb(service.api.pid) - before
    assert grown < 24, f"the API grew by {grown:.0f} MB"


# --- 10: slow clients --------------------------------------------------------------------


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(service: RunningService) -> None:
    # Given a client that sends its headers a byte at a time, with no key
    head = request_head("GET", "/v1/batches", {"x-slow": "e" * 200})

    # When it trickles them
    with connect(service) as sock:
        response, sent = trickle(sock, head)

    # Then the server answers 408 and closes before the headers are ever complete
    assert sent < len(head)
    assert status_of(response) == 408, response[:300]
    assert error_of(response)["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed(service: RunningService) -> None:
    with connect(service) as sock:
        # When a client connects and sends nothing, the server closes the connection
        assert read_until_closed(sock) == b""
    assert healthy(service)


def test_a_jsonl_body_sent_a_byte_at_a_time_is_cut_off_and_nothing_stored(
    service: RunningService, redis_url: str
) -> None:
    body = to_jsonl(
        [line(f"slow-{n}", {"model": "summarize", "text": "x" * 50}) for n in range(20)]
    )
    head = request_head(
        "POST",
        "/v1/batches",
        {"x-api-key": service.keys[0], "content-type": "application/jsonl"},
        content_length=len(body),
    )
    before = stored(service, redis_url)
    with connect(service) as sock:
        sock.sendall(head)
        # When the body comes a byte every 0.3 s: never idle long, but slow in all
        response, sent = trickle(sock, body)

    # Then the body deadline ends it with a 408 before it is complete, and nothing is kept
    assert sent < len(body)
    assert status_of(response) == 408, response[:300]
    error = error_of(response)
    assert error["code"] == "request_timeout"
    assert "did not end within" in error["message"]
    assert eventually(lambda: stored(service, redis_url) == before)


def test_a_body_that_stops_is_cut_off_after_the_idle_timeout(service: RunningService) -> None:
    body = orjson.dumps(PASS_THROUGH)
    head = request_head(
        "POST",
        "/v1/chat/completions",
        {"x-api-key": service.keys[0], "content-type": "application/json"},
        content_length=len(body),
    )
    with connect(service) as sock:
        # When half a body is sent and then nothing more
        sock.sendall(head + body[: len(body) // 2])
        response = read_until_closed(sock)

    # Then the server answers 408, saying no byte came for the idle timeout, and closes
    assert status_of(response) == 408, response[:300]
    assert "No byte of the request body arrived" in error_of(response)["message"]


def test_half_sent_uploads_are_cut_off_and_leave_nothing_stored(
    service: RunningService, redis_url: str
) -> None:
    boundary = "hostileboundary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    head = request_head(
        "POST",
        "/v1/files",
        {
            "x-api-key": service.keys[0],
            "content-type": f"multipart/form-data; boundary={boundary}",
        },
        content_length=len(preamble) + 100_000,
    )
    before = stored(service, redis_url)
    uploads = [connect(service) for _ in range(20)]
    try:
        for sock in uploads:
            sock.sendall(head + preamble)
            sock.settimeout(0.02)
        # When 20 uploads keep sending a byte now and then, none ever finishing
        answers: dict[int, bytes] = {}
        deadline = time.monotonic() + GIVE_UP_AFTER
        while len(answers) < len(uploads) and time.monotonic() < deadline:
            for index, sock in enumerate(uploads):
                if index in answers:
                    continue
                try:
                    sock.send(b"{")
                    received = sock.recv(65536)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    received = b""
                sock.settimeout(GIVE_UP_AFTER)
                answers[index] = received + read_until_closed(sock) if received else b""
            time.sleep(0.3)
    finally:
        for sock in uploads:
            sock.close()

    # Then each was cut off with a 408 ...
    assert len(answers) == len(uploads)
    assert all(status_of(answer) == 408 for answer in answers.values() if answer)
    # ... and once closed none of them left upload chunks or a stored upload
    assert eventually(lambda: uploads_in_progress(redis_url) == [])
    assert stored(service, redis_url) == before


def test_a_keep_alive_connection_serves_requests_after_a_pause(service: RunningService) -> None:
    # Given one connection used for two requests, the second after a short pause
    with service.client() as client:
        first = client.get("/v1/batches")
        time.sleep(HEADER_TIMEOUT / 3)
        second = client.get("/v1/batches")

    # Then both are served
    assert (first.status_code, second.status_code) == (200, 200)


# --- 11: many templates ------------------------------------------------------------------


def template(tag: str) -> str:
    """About 1 KB of template, distinct per tag, reading two placeholders."""
    rows = "".join(
        f"Row {n} of {tag}: {{{{ name | upper }}}} {{{{ topic }}}}.\n" for n in range(20)
    )
    return f"{{% if topic %}}{rows}{{% endif %}}"


def test_many_stored_prompts_bound_the_work_of_one_request(
    service: RunningService, redis_url: str
) -> None:
    variables = {"name": "ada", "topic": "tickets"}
    with service.client() as client, service.client(service.keys[1]) as other:
        # Given another key's prompt, of more template than one request may compile
        kept = unique("kept")
        create_prompt(other, kept, user(template(kept) * 21))
        # And 150 prompts of one key: more than its share of the template cache
        slugs = [unique(f"many-{n}") for n in range(150)]
        for slug in slugs:
            create_prompt(client, slug, user(template(slug)))

        # When that key names all 150 in one batch
        with nothing_stored(service, redis_url):
            refused = submit(
                client, [prompt_line(f"p-{n}", slug, variables) for n, slug in enumerate(slugs)]
            )
        # And three of them, the oldest (compiled again) and the newest (kept), in others
        oldest = submit(client, [prompt_line(f"o-{n}", slugs[n], variables) for n in range(3)])
        newest = submit(client, [prompt_line(f"n-{n}", slugs[-1 - n], variables) for n in range(3)])
        # And the other key names its prompt
        theirs = submit(other, [prompt_line("t-1", kept, variables)])

    # Then the 150-line batch is refused where its template work passes the bound
    assert refused.status_code == 400, refused.text
    faults = refused.json()["error"]["lines"]
    assert faults and all(fault["code"] == "template_work_exceeded" for fault in faults)
    assert faults[0]["line"] > 1 and str(TEMPLATE_CHARS_PER_REQUEST) in faults[0]["message"]
    # And the small batches are accepted, as is the other key's, its prompt still compiled
    for response in (oldest, newest, theirs):
        assert response.status_code == 200, response.text
        assert response.json()["request_counts"]["total"] in (1, 3)


# --- 12: deep nesting --------------------------------------------------------------------


def nested(levels: int) -> Any:
    """An object nested ``levels`` deep: {"a": {"a": ... {} ...}}."""
    value: Any = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def deep_body(levels: int) -> dict[str, Any]:
    """A pass-through body nested ``levels`` deep in all (the body is level 1)."""
    return {**PASS_THROUGH, "metadata": nested(levels - 1)}


def deep_jsonl(lines: list[dict[str, Any]]) -> bytes:
    # The standard library writes any depth; orjson stops at 254 levels.
    return b"".join(json.dumps(item).encode() + b"\n" for item in lines)


def assert_names_line_2(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_batch"
    assert error["line"] == 2
    [fault] = error["lines"]
    assert (fault["line"], fault["code"], fault["param"]) == (2, "json_too_deep", "body")
    assert fault["custom_id"] == "deep" and str(MAX_JSON_DEPTH) in fault["message"]


def test_a_deep_jsonl_line_is_refused_naming_it(service: RunningService, redis_url: str) -> None:
    lines = [line("ok", PASS_THROUGH), line("deep", deep_body(300))]
    with nothing_stored(service, redis_url), service.client() as client:
        response = client.post("/v1/batches", content=deep_jsonl(lines), headers=JSONL)
    assert_names_line_2(response)


def test_a_deep_inline_request_is_refused_naming_it(
    service: RunningService, redis_url: str
) -> None:
    lines = [line("ok", PASS_THROUGH), line("deep", deep_body(300))]
    with nothing_stored(service, redis_url), service.client() as client:
        response = client.post("/v1/batches", json={"requests": lines})
    assert_names_line_2(response)


def test_a_deep_line_of_an_uploaded_file_fails_the_batch_naming_it(
    service: RunningService,
) -> None:
    content = to_jsonl([line("ok", PASS_THROUGH), line("deep", deep_body(100))])
    with service.client() as client:
        uploaded = client.post(
            "/v1/files", files={"file": ("deep.jsonl", content)}, data={"purpose": "batch"}
        )
        assert uploaded.status_code == 200, uploaded.text
        created = client.post(
            "/v1/batches",
            json={"input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions"},
        )
        assert created.status_code == 200, created.text
        batch = wait_finished(client, created.json()["id"])
    # As the hosted API does for a faulty input file: the batch fails, naming the line
    assert batch["status"] == "failed"
    [fault] = batch["errors"]["data"]
    assert (fault["line"], fault["code"], fault["param"]) == (2, "json_too_deep", "body")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
def test_a_deep_realtime_body_is_a_400(service: RunningService, path: str) -> None:
    body = {**deep_body(300), "prompt": "hi", "input": "hi"}
    with service.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("json_too_deep", "body")


def test_nesting_up_to_the_limit_is_accepted(service: RunningService) -> None:
    with service.client() as client:
        # A realtime body may nest 64 levels, one more is refused
        at_limit = client.post("/v1/chat/completions", json=deep_body(MAX_JSON_DEPTH))
        over = client.post("/v1/chat/completions", json=deep_body(MAX_JSON_DEPTH + 1))
        # And so may a line's body
        batch = submit(client, [line("at-limit", deep_body(MAX_JSON_DEPTH))])
    assert at_limit.status_code == 200, at_limit.text
    assert over.status_code == 400 and over.json()["error"]["code"] == "json_too_deep"
    assert batch.status_code == 200, batch.text


# --- 13: odd ids -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_batch(service: RunningService) -> str:
    """A batch that has run, so its ``:results``, ``:lines`` and ``:usage`` keys exist."""
    with service.client() as client:
        response = submit(client, [line("one", PASS_THROUGH), line("two", PASS_THROUGH)])
        assert response.status_code == 200, response.text
        batch = wait_finished(client, response.json()["id"])
    assert batch["status"] == "completed", batch
    batch_id: str = batch["id"]
    return batch_id


@pytest.mark.parametrize("suffix", [":results", ":lines", ":usage", ":failed", ":retries", "x", ""])
@pytest.mark.parametrize("route", ["", "/output", "/cancel", "/retry", "/events"])
def test_batch_ids_with_a_suffix_are_404(
    service: RunningService, finished_batch: str, suffix: str, route: str
) -> None:
    # An id with a suffix, or an unknown id of the right shape (suffix ""), names no batch
    batch_id = finished_batch + suffix if suffix else "batch_" + "0" * 32
    method = "POST" if route in {"/cancel", "/retry"} else "GET"
    with service.client() as client:
        response = client.request(method, f"/v1/batches/{batch_id}{route}")
        # And the connection stays usable
        after = client.get(f"/v1/batches/{finished_batch}")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert after.status_code == 200


@pytest.mark.parametrize("suffix", [":results", ":retries", "x"])
def test_merged_with_ids_with_a_suffix_are_404(
    service: RunningService, finished_batch: str, suffix: str
) -> None:
    with service.client() as client:
        response = client.get(
            f"/v1/batches/{finished_batch}/output", params={"merged_with": finished_batch + suffix}
        )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("route", ["", "/content"])
def test_file_ids_with_a_suffix_are_404(service: RunningService, route: str) -> None:
    with service.client() as client:
        uploaded = client.post(
            "/v1/files",
            files={"file": ("in.jsonl", to_jsonl([line("a", PASS_THROUGH)]))},
            data={"purpose": "batch"},
        )
        file_id = uploaded.json()["id"]
        responses = [
            client.get(f"/v1/files/{file_id}:x{route}"),
            client.get(f"/v1/files/{file_id[:-1]}{route}"),
            client.post(
                "/v1/batches",
                json={"input_file_id": f"{file_id}:x", "endpoint": "/v1/chat/completions"},
            ),
        ]
        deleted = client.delete(f"/v1/files/{file_id}:x")
        kept = client.get(f"/v1/files/{file_id}")
    for response in [*responses, deleted]:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    assert kept.status_code == 200

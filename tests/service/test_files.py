"""The Files API: streamed uploads, listing, download, delete, ownership and limits."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import NotFoundError, OpenAI

from service.store.files import CONTENT_CHUNK_BYTES
from tests.support.file_content import has_content, uploads_in_progress
from tests.support.service import RunningService, start_service

BOUNDARY = "textbatch-test-boundary"


def upload(client: httpx.Client, content: bytes, filename: str = "input.jsonl") -> httpx.Response:
    return client.post(
        "/v1/files",
        files={"file": (filename, content, "application/jsonl")},
        data={"purpose": "batch"},
    )


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in kB."""
    fields = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = row.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0])
    return fields


def generated_multipart(size: int, digest: Any) -> Iterator[bytes]:
    """A multipart body carrying ``size`` pseudo-random bytes, never held whole in memory."""
    yield (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    block = 1 << 20
    sent = 0
    seed = hashlib.sha256(b"seed").digest()
    while sent < size:
        seed = hashlib.sha256(seed).digest()
        chunk = (seed * (block // len(seed) + 1))[: min(block, size - sent)]
        digest.update(chunk)
        sent += len(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_uploaded_file_round_trips_through_get_list_content_and_delete(
    llm_service: RunningService, redis_url: str
) -> None:
    # Given an uploaded file
    content = b'{"custom_id": "a"}\n{"custom_id": "b"}\n'
    with llm_service.client() as client:
        response = upload(client, content)
        assert response.status_code == 200, response.text
        created = response.json()

        # Then it is described the way the hosted API describes files
        assert created["id"].startswith("file-") and len(created["id"]) == 5 + 32
        assert created == {
            "id": created["id"],
            "object": "file",
            "bytes": len(content),
            "created_at": created["created_at"],
            "filename": "input.jsonl",
            "purpose": "batch",
            "status": "processed",
            "expires_at": created["created_at"] + 30 * 24 * 3600,
            "status_details": None,
        }
        assert abs(created["created_at"] - time.time()) < 60
        assert has_content(redis_url, created["id"])

        # And it can be read back, listed and downloaded
        assert client.get(f"/v1/files/{created['id']}").json() == created
        listing = client.get("/v1/files").json()
        assert listing["object"] == "list"
        assert created in listing["data"]
        downloaded = client.get(f"/v1/files/{created['id']}/content")
        assert downloaded.status_code == 200
        assert downloaded.headers["content-type"] == "application/octet-stream"
        assert downloaded.content == content

        # When it is deleted
        deleted = client.delete(f"/v1/files/{created['id']}")

        # Then it is gone everywhere, its bytes too
        assert deleted.json() == {"id": created["id"], "object": "file", "deleted": True}
        assert client.get(f"/v1/files/{created['id']}").status_code == 404
        assert client.get(f"/v1/files/{created['id']}/content").status_code == 404
        assert client.delete(f"/v1/files/{created['id']}").status_code == 404
        ids = [item["id"] for item in client.get("/v1/files").json()["data"]]
        assert created["id"] not in ids
    assert not has_content(redis_url, created["id"])


def test_official_sdk_creates_pages_reads_and_deletes_files(llm_service: RunningService) -> None:
    # Given three files uploaded through the official SDK
    sdk = OpenAI(base_url=f"{llm_service.url}/v1", api_key=llm_service.keys[0], max_retries=0)
    contents = {f"sdk-{n}.jsonl": f'{{"n": {n}}}\n'.encode() * (n + 1) for n in range(3)}
    created = {
        name: sdk.files.create(file=(name, data), purpose="batch")
        for name, data in contents.items()
    }
    try:
        for name, file in created.items():
            # Then each can be retrieved and downloaded byte for byte
            retrieved = sdk.files.retrieve(file.id)
            assert (retrieved.filename, retrieved.bytes) == (name, len(contents[name]))
            assert retrieved.purpose == "batch"
            assert sdk.files.content(file.id).read() == contents[name]

        # And paging with limit and after visits every file once, newest first
        first = sdk.files.list(limit=2)
        assert len(first.data) == 2 and first.has_more
        second = sdk.files.list(limit=2, after=first.data[-1].id)
        assert not {f.id for f in first.data} & {f.id for f in second.data}
        listed = list(sdk.files.list(limit=2))
        listed_ids = [f.id for f in listed]
        assert len(listed_ids) == len(set(listed_ids))
        assert {f.id for f in created.values()} <= set(listed_ids)
        assert listed_ids[:2] == [f.id for f in first.data]
        stamps = [f.created_at for f in listed]
        assert stamps == sorted(stamps, reverse=True)
        ascending = [f.id for f in sdk.files.list(order="asc")]
        assert ascending == listed_ids[::-1]
        outputs = list(sdk.files.list(purpose="batch_output", limit=2))
        assert all(f.purpose == "batch_output" for f in outputs)
        assert not {f.id for f in outputs} & {f.id for f in created.values()}
    finally:
        for file in created.values():
            assert sdk.files.delete(file.id).deleted
    for file in created.values():
        with pytest.raises(NotFoundError):
            sdk.files.retrieve(file.id)


def test_another_key_cannot_see_read_or_delete_a_file(llm_service: RunningService) -> None:
    # Given a file of key 0
    with llm_service.client() as owner:
        file_id = upload(owner, b"mine\n").json()["id"]

        # When key 1 reaches for it, it does not exist
        with llm_service.client(llm_service.keys[1]) as other:
            for response in (
                other.get(f"/v1/files/{file_id}"),
                other.get(f"/v1/files/{file_id}/content"),
                other.delete(f"/v1/files/{file_id}"),
            ):
                assert response.status_code == 404
                assert response.json()["error"]["code"] == "not_found"
            listing = other.get("/v1/files").json()
            assert file_id not in [item["id"] for item in listing["data"]]
            assert other.get("/v1/files", params={"after": file_id}).status_code == 400

        # Then the owner still has it, untouched
        assert owner.get(f"/v1/files/{file_id}/content").content == b"mine\n"
        assert owner.delete(f"/v1/files/{file_id}").status_code == 200


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"data": {"purpose": "fine-tune"}, "files": {"file": ("a.jsonl", b"x")}}, "purpose"),
        ({"data": {}, "files": {"file": ("a.jsonl", b"x")}}, "purpose"),
        ({"data": {"purpose": "batch", "other": "y"}, "files": {"other": ("a", b"x")}}, "file"),
        ({"data": {"purpose": "batch"}, "files": {"file": (None, b"x")}}, "file"),
    ],
    ids=["wrong-purpose", "no-purpose", "no-file", "file-without-filename"],
)
def test_an_invalid_upload_form_is_rejected_and_stores_nothing(
    llm_service: RunningService, redis_url: str, form: dict[str, Any], param: str
) -> None:
    with llm_service.client() as client:
        before = client.get("/v1/files").json()["data"]
        response = client.post("/v1/files", **form)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
        assert client.get("/v1/files").json()["data"] == before
    assert uploads_in_progress(redis_url) == []


def test_a_body_that_is_not_multipart_is_unsupported(llm_service: RunningService) -> None:
    with llm_service.client() as client:
        response = client.post(
            "/v1/files",
            content=b'{"purpose": "batch"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_a_client_that_goes_away_mid_upload_leaves_no_half_file(
    llm_service: RunningService, redis_url: str
) -> None:
    # Given an upload whose client disconnects after part of the file (a few chunks)
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="cut.jsonl"\r\n\r\n'
    ).encode() + b"x" * (3 * CONTENT_CHUNK_BYTES)
    request = (
        "POST /v1/files HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{llm_service.port}\r\n"
        f"x-api-key: {llm_service.keys[0]}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 10000000\r\n\r\n"
    ).encode()
    with llm_service.client() as client:
        before = client.get("/v1/files").json()["data"]
        with socket.create_connection(("127.0.0.1", llm_service.port)) as sock:
            sock.sendall(request + head)
            deadline = time.monotonic() + 10
            while not uploads_in_progress(redis_url) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert uploads_in_progress(redis_url), "the upload never started"

        # Then its chunks are removed and nothing is listed
        deadline = time.monotonic() + 10
        while uploads_in_progress(redis_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uploads_in_progress(redis_url) == []
        assert client.get("/v1/files").json()["data"] == before


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    # Given a service that takes files of at most 1000 bytes
    service = start_service(redis_url, tmp_path, workers=0, max_body_bytes="1000")
    try:
        with service.client() as client:
            # When a file of exactly the limit and then one over it are uploaded
            fits = upload(client, b"a" * 1000)
            too_big = upload(client, b"b" * 5000)

            def chunked() -> Iterator[bytes]:
                yield from generated_multipart(3000, hashlib.sha256())

            too_big_streamed = client.post(
                "/v1/files",
                content=chunked(),
                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
            )

            # Then the first is kept and the others are refused, naming the limit
            assert fits.status_code == 200, fits.text
            for response in (too_big, too_big_streamed):
                assert response.status_code == 413, response.text
                assert response.json()["error"]["code"] == "payload_too_large"
                assert "1000 bytes" in response.json()["error"]["message"]
            listing = client.get("/v1/files").json()["data"]
            assert [item["id"] for item in listing] == [fits.json()["id"]]
        assert uploads_in_progress(redis_url) == []
        assert has_content(redis_url, fits.json()["id"])
    finally:
        service.stop()


def test_a_large_upload_is_streamed_to_the_store_in_bounded_memory(
    llm_service: RunningService,
) -> None:
    # Given an API process and a 50 MB upload generated on the fly
    assert llm_service.api is not None
    pid = llm_service.api.pid
    size = 50 * 1024 * 1024
    sent = hashlib.sha256()
    before = memory_kb(pid)
    with llm_service.client() as client:
        # When it is uploaded and downloaded again
        response = client.post(
            "/v1/files",
            content=generated_multipart(size, sent),
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        assert response.status_code == 200, response.text
        file_id = response.json()["id"]
        received = hashlib.sha256()
        with client.stream("GET", f"/v1/files/{file_id}/content") as download:
            assert download.status_code == 200
            for chunk in download.iter_bytes():
                received.update(chunk)
        after = memory_kb(pid)
        client.delete(f"/v1/files/{file_id}")

    # Then every byte arrived intact, and the API never held the file in memory
    assert response.json()["bytes"] == size
    assert received.hexdigest() == sent.hexdigest()
    growth_mb = {name: (after[name] - before[name]) / 1024 for name in before}
    assert growth_mb["VmRSS"] < 60, growth_mb
    assert growth_mb["VmHWM"] < 60, growth_mb

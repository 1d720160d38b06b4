"""A full disk under the data directory: 507 naming it, not ready, and nothing half-written.

The data directory is a small tmpfs (mounting one needs root), holding the
embedded Valkey's files, as ``textbatch api`` lays them out; uploads are kept in
that Valkey, so a full disk refuses them the way it refuses a batch.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.embedded_access import embedded_password, embedded_port, redis_url
from service.store.files import CONTENT_CHUNK_BYTES
from tests.support.batches import line, submit, to_jsonl
from tests.support.file_content import uploads_in_progress
from tests.support.service import free_port, wait_until_answering

KEY = "disk-full-key"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
def api_on(small_disk: Path) -> Iterator[httpx.Client]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}
    env.update(
        TEXTBATCH_DATA_DIR=str(small_disk),
        TEXTBATCH_PORT=str(port),
        TEXTBATCH_API_KEYS=KEY,
        TEXTBATCH_DURABLE_WRITE_TIMEOUT_MS="1000",
        TEXTBATCH_LOG_LEVEL="warning",
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "api"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/readyz", api, timeout=60)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": KEY}, timeout=30
        ) as client:
            yield client
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=30)


def _fill(disk: Path) -> Path:
    """Take every free byte of the disk; return the file that holds them."""
    filler = disk / "filler"
    block = b"\0" * (1 << 16)
    with open(filler, "wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
        # Whatever room is left is smaller than a block: take it a page at a time.
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 512)
        with pytest.raises(OSError) as full:
            handle.write(b"\0")
    assert full.value.errno == errno.ENOSPC
    return filler


def _upload(client: httpx.Client, content: bytes) -> httpx.Response:
    files = {"file": ("input.jsonl", content, "application/jsonl")}
    return client.post("/v1/files", files=files, data={"purpose": "batch"})


def _lines(tag: str) -> list[dict[str, object]]:
    return [line(f"{tag}-{n}", {"model": "summarize", "text": f"Item {n}."}) for n in range(3)]


def _is_storage_full(response: httpx.Response, disk: Path) -> None:
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage"
    assert str(disk) in error["message"], error["message"]


@pytest.mark.timeout(180)
def test_a_full_disk_is_a_507_and_not_ready_and_keeps_nothing(
    small_disk: Path, api_on: httpx.Client
) -> None:
    client = api_on
    # Given a service that stored a batch and a file while there was room
    kept_batch = submit(client, _lines("before")).json()["id"]
    kept_file = _upload(client, to_jsonl(_lines("file"))).json()["id"]

    # When the disk fills up
    filler = _fill(small_disk)

    # Then an upload is a 507 naming the data directory, and leaves no partial file
    # (several chunks, so some reach Redis before it refuses them)
    late_file = to_jsonl(_lines("late")) * (3 * CONTENT_CHUNK_BYTES // 400)
    _is_storage_full(_upload(client, late_file), small_disk)
    # And a batch submission is a 507 too
    _is_storage_full(submit(client, _lines("late")), small_disk)
    # And the service says it is not ready
    ready = client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.json()["status"] != "ready"

    # And once there is room again, only what was acknowledged exists and work goes on.
    # (Redis may have taken the refused batch in memory just as its disk filled; the API
    # takes it back as soon as Redis accepts writes again.)
    filler.unlink()
    wait_until_answering(f"{client.base_url}/readyz", timeout=30)
    deadline = time.monotonic() + 15
    while _batch_ids(client) != [kept_batch] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _batch_ids(client) == [kept_batch]
    file_ids = [item["id"] for item in client.get("/v1/files").json()["data"]]
    assert file_ids == [kept_file]
    # And the refused upload's chunks are taken back too
    embedded = redis_url(embedded_port(small_disk, None), embedded_password(small_disk))
    deadline = time.monotonic() + 15
    while uploads_in_progress(embedded) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert uploads_in_progress(embedded) == []
    assert client.get(f"/v1/files/{kept_file}/content").content == to_jsonl(_lines("file"))
    assert submit(client, _lines("after")).status_code == 200


def _batch_ids(client: httpx.Client) -> list[str]:
    return [item["id"] for item in client.get("/v1/batches").json()["data"]]

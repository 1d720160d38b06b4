"""Retention and delete: expired batches and files are removed, deletes free memory at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.store import keys
from standins.upstream import StandinUpstream
from tests.conftest import UPSTREAM_KEY
from tests.support.batches import line, submit, to_jsonl, wait_finished
from tests.support.file_content import has_content
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, start_service

RETENTION_SECONDS = 3


def _lines(tag: str, count: int = 3) -> list[dict[str, Any]]:
    return [line(f"{tag}-{n}", {"model": "summarize", "text": f"Item {n}."}) for n in range(count)]


def _upload(client: httpx.Client, content: bytes, **fields: str) -> httpx.Response:
    return client.post(
        "/v1/files",
        files={"file": ("input.jsonl", content, "application/jsonl")},
        data={"purpose": "batch", **fields},
    )


def _from_file(client: httpx.Client, file_id: str, **extra: Any) -> httpx.Response:
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", **extra}
    return client.post("/v1/batches", json=body)


def _lasting_keys(client: redis.Redis) -> set[bytes]:
    """Every key without an expiry: locks and idempotency keys come and go by themselves."""
    return {key for key in client.scan_iter(count=1000) if int(client.ttl(key)) == -1}


def _eventually(check: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return bool(check())


@pytest.fixture(scope="module")
def own_redis() -> Iterator[str]:
    """A Valkey of this module's alone, so its key count means only this service's keys."""
    with real_redis() as url:
        yield url


@pytest.fixture(scope="module")
def short_lived(
    own_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    service = start_service(
        own_redis,
        Path(tmp_path_factory.mktemp("short-retention")),
        retention=f"{RETENTION_SECONDS}s",
        sweep_interval="0.5",
    )
    yield service
    service.stop()


def test_a_short_retention_removes_a_finished_batch_its_data_and_files(
    short_lived: RunningService, own_redis: str
) -> None:
    store = redis.Redis.from_url(own_redis)
    with short_lived.client() as client:
        # Given a service whose keys have settled (one batch run and deleted)
        warm = submit(client, _lines("warm")).json()["id"]
        wait_finished(client, warm)
        assert client.delete(f"/v1/batches/{warm}").status_code == 200
        before = _lasting_keys(store)

        # When a file is uploaded, a batch made from it and another from a JSONL body
        file = _upload(client, to_jsonl(_lines("file"))).json()
        assert file["expires_at"] == file["created_at"] + RETENTION_SECONDS
        from_file = _from_file(client, file["id"]).json()["id"]
        jsonl = submit(client, _lines("body", 20)).json()["id"]
        finished = [wait_finished(client, batch_id) for batch_id in (from_file, jsonl)]

        # Then each finished batch says when its data goes, and its output file too
        for batch in finished:
            assert batch["status"] == "completed"
            assert batch["data_expires_at"] == batch["completed_at"] + RETENTION_SECONDS
            assert batch["output_expires_after"] is None
            output = client.get(f"/v1/files/{batch['output_file_id']}").json()
            assert output["expires_at"] == batch["data_expires_at"]
        assert store.exists(keys.batch_results(jsonl), keys.batch_lines(jsonl)) == 2
        assert has_content(own_redis, file["id"])

        # And once the retention has passed, the batches, their files and the upload are gone
        def all_gone() -> bool:
            paths = [f"/v1/batches/{from_file}", f"/v1/batches/{jsonl}", f"/v1/files/{file['id']}"]
            paths += [f"/v1/files/{batch['output_file_id']}" for batch in finished]
            return all(client.get(path).status_code == 404 for path in paths)

        assert _eventually(all_gone)
        assert client.get("/v1/batches").json()["data"] == []
        assert client.get("/v1/files").json()["data"] == []
        # And so is every key they had: Redis holds what it held before
        assert _eventually(lambda: _lasting_keys(store) == before), _lasting_keys(store) ^ before
        assert not has_content(own_redis, file["id"])
        assert store.zcard(keys.retention_schedule()) == 0
    store.close()


def test_deleting_a_finished_batch_frees_its_keys_at_once(
    offline_service: RunningService, redis_url: str
) -> None:
    store = redis.Redis.from_url(redis_url)
    with offline_service.client() as client:
        # Given a finished batch with its output file
        batch = wait_finished(client, submit(client, _lines("del")).json()["id"])
        batch_id = batch["id"]
        assert store.exists(keys.batch_results(batch_id), keys.batch_lines(batch_id)) == 2

        # When its owner deletes it
        deleted = client.delete(f"/v1/batches/{batch_id}")

        # Then the answer is the hosted API's, and the batch is gone from every view
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"id": batch_id, "object": "batch", "deleted": True}
        assert client.get(f"/v1/batches/{batch_id}").status_code == 404
        listed = [item["id"] for item in client.get("/v1/batches").json()["data"]]
        assert batch_id not in listed
        assert client.get(f"/v1/files/{batch['output_file_id']}").status_code == 404
        # And no key of it is left, nor its place on the retention schedule
        assert list(store.scan_iter(match=f"{keys.batch(batch_id)}*", count=1000)) == []
        assert store.zscore(keys.retention_schedule(), batch_id) is None
        assert client.delete(f"/v1/batches/{batch_id}").status_code == 404
    store.close()


def test_a_running_batch_cannot_be_deleted(redis_url: str, tmp_path: Path) -> None:
    # Given a batch that stays running (no worker takes its lines)
    service = start_service(redis_url, tmp_path, workers=0)
    try:
        with service.client() as client:
            batch_id = submit(client, _lines("running")).json()["id"]
            for _ in range(2):
                # When it is deleted, before and after a cancel that is still under way
                response = client.delete(f"/v1/batches/{batch_id}")

                # Then it is a 409 that says to cancel first, and the batch is untouched
                assert response.status_code == 409, response.text
                error = response.json()["error"]
                assert error["code"] == "batch_running"
                assert "cancel" in error["message"]
                assert client.get(f"/v1/batches/{batch_id}").status_code == 200
                assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
            assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "cancelling"
    finally:
        service.stop()


def test_another_key_cannot_delete_a_batch(offline_service: RunningService) -> None:
    with offline_service.client() as owner:
        batch_id = wait_finished(owner, submit(owner, _lines("mine")).json()["id"])["id"]
        with offline_service.client(offline_service.keys[1]) as other:
            response = other.delete(f"/v1/batches/{batch_id}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        assert owner.get(f"/v1/batches/{batch_id}").json()["status"] == "completed"
        assert owner.get(f"/v1/batches/{batch_id}/output").status_code == 200


def test_chosen_retention_is_shown_on_the_batch_and_the_file(
    offline_service: RunningService,
) -> None:
    with offline_service.client() as client:
        # Given a file kept two hours and a batch whose data is kept one
        file = _upload(
            client,
            to_jsonl(_lines("chosen")),
            **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "7200"},
        ).json()
        policy = {"anchor": "created_at", "seconds": 3600}
        created = _from_file(client, file["id"], output_expires_after=policy).json()
        batch = wait_finished(client, created["id"])

        # Then both say when they go, and the batch keeps its completion window's expires_at
        assert file["expires_at"] == file["created_at"] + 7200
        assert batch["output_expires_after"] == policy
        assert batch["data_expires_at"] == batch["completed_at"] + 3600
        assert batch["expires_at"] == batch["created_at"] + 24 * 3600


@pytest.mark.parametrize(
    ("policy", "param"),
    [
        ({"anchor": "created_at", "seconds": 3599}, "output_expires_after.seconds"),
        ({"anchor": "created_at", "seconds": 30 * 24 * 3600 + 1}, "output_expires_after.seconds"),
        ({"anchor": "created_at", "seconds": "3600"}, "output_expires_after.seconds"),
        ({"anchor": "created_at", "seconds": True}, "output_expires_after.seconds"),
        ({"anchor": "completed_at", "seconds": 3600}, "output_expires_after.anchor"),
        ({"seconds": 3600, "extra": 1}, "output_expires_after"),
        (3600, "output_expires_after"),
    ],
)
def test_an_invalid_output_expires_after_is_a_400_that_stores_nothing(
    offline_service: RunningService, policy: object, param: str
) -> None:
    with offline_service.client() as client:
        before = client.get("/v1/batches").json()["data"]
        body = {"requests": _lines("bad-policy"), "output_expires_after": policy}
        response = client.post("/v1/batches", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_request"
        assert response.json()["error"]["param"] == param
        assert client.get("/v1/batches").json()["data"] == before


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"}, "seconds"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "9e9"}, "seconds"),
        ({"expires_after[anchor]": "created_at"}, "seconds"),
        ({"expires_after[seconds]": "3600"}, "anchor"),
        ({"expires_after[anchor]": "now", "expires_after[seconds]": "3600"}, "anchor"),
    ],
)
def test_an_invalid_file_expires_after_is_a_400_that_stores_nothing(
    offline_service: RunningService, fields: dict[str, str], param: str
) -> None:
    with offline_service.client() as client:
        before = client.get("/v1/files").json()["data"]
        response = _upload(client, b'{"a": 1}\n', **fields)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == f"expires_after.{param}"
        assert client.get("/v1/files").json()["data"] == before


def test_an_expired_upload_is_kept_while_a_batch_made_from_it_runs(
    redis_url: str, upstream: StandinUpstream, tmp_path: Path
) -> None:
    # Given a service keeping uploads 2 s, and a batch from a file whose one line's
    # upstream call cannot end before the 8 s call timeout
    service = start_service(
        redis_url,
        tmp_path,
        retention="2s",
        sweep_interval="0.5",
        llm_base_url=upstream.base_url,
        llm_api_key=UPSTREAM_KEY,
        llm_model="standin-model",
        llm_timeout="8",
        llm_max_attempts="1",
    )
    try:
        with service.client() as client:
            slow = [line("slow", {"model": "summarize", "text": "Wait. [[slow:60]]"})]
            file = _upload(client, to_jsonl(slow)).json()
            batch_id = _from_file(client, file["id"]).json()["id"]

            # When its expiry has passed by several reaper rounds while the batch runs
            while time.time() < file["expires_at"] + 3:
                time.sleep(0.2)

            # Then the file is still there
            assert client.get(f"/v1/batches/{batch_id}").json()["status"] == "in_progress"
            assert client.get(f"/v1/files/{file['id']}").status_code == 200
            assert has_content(redis_url, file["id"])
            # And once the batch has ended, the file goes too
            wait_finished(client, batch_id)
            assert _eventually(lambda: client.get(f"/v1/files/{file['id']}").status_code == 404)
            assert not has_content(redis_url, file["id"])
    finally:
        service.stop()

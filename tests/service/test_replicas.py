"""Two API replicas and two workers on one Redis behave as one service.

Each replica has a data directory of its own, as on two machines: nothing a
request needs may live on the disk of the replica that happened to receive an
earlier request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from standins.upstream import StandinUpstream
from tests.conftest import UPSTREAM_KEY
from tests.support.batches import line, output_lines, to_jsonl, wait_finished
from tests.support.redis_for_tests import real_redis
from tests.support.service import RunningService, free_port, start_service


@dataclass
class Replicas:
    first: RunningService
    second: RunningService


@pytest.fixture(scope="module")
def replicas(
    upstream: StandinUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    root = Path(tmp_path_factory.mktemp("replicas"))
    with real_redis() as redis_url:
        first = start_service(
            redis_url,
            root / "machine-a",
            workers=1,
            llm_base_url=upstream.base_url,
            llm_api_key=UPSTREAM_KEY,
            llm_model="standin-model",
        )
        # The second replica: the same keys, queue and Redis, another port and directory.
        env = dict(first.env)
        env["TEXTBATCH_DATA_DIR"] = str(root / "machine-b")
        port = free_port()
        env["TEXTBATCH_PORT"] = str(port)
        second = RunningService(env=env, port=port, keys=first.keys)
        try:
            second.start_api()
            second.start_worker()
            yield Replicas(first, second)
        finally:
            second.stop()
            first.stop()


def _lines(count: int, tag: str, slow: bool = False) -> list[dict[str, Any]]:
    suffix = " [[slow]]" if slow else ""
    return [
        line(f"{tag}-{n:03d}", {"model": "summarize", "text": f"Parcel {n} left Oslo.{suffix}"})
        for n in range(count)
    ]


def test_a_file_uploaded_through_one_replica_is_used_and_read_through_the_other(
    replicas: Replicas,
) -> None:
    content = to_jsonl(_lines(12, "file"))
    with replicas.first.client() as a, replicas.second.client() as b:
        uploaded = a.post(
            "/v1/files",
            files={"file": ("in.jsonl", content, "application/jsonl")},
            data={"purpose": "batch"},
        )
        assert uploaded.status_code == 200, uploaded.text
        file_id = uploaded.json()["id"]
        assert b.get(f"/v1/files/{file_id}").json()["bytes"] == len(content)
        assert b.get(f"/v1/files/{file_id}/content").content == content
        created = b.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        assert created.status_code == 200, created.text
        batch = wait_finished(a, created.json()["id"], timeout=120)
        assert batch["status"] == "completed"
        assert batch["request_counts"]["completed"] == 12
        through_a = a.get(f"/v1/batches/{batch['id']}/output").content
        through_b = b.get(f"/v1/files/{batch['output_file_id']}/content").content
        assert through_a == through_b
        assert [item["custom_id"] for item in output_lines(a, batch["id"])] == [
            f"file-{n:03d}" for n in range(12)
        ]


def test_a_batch_made_through_one_replica_is_cancelled_through_the_other(
    replicas: Replicas,
) -> None:
    with replicas.first.client() as a, replicas.second.client() as b:
        created = a.post(
            "/v1/batches",
            content=to_jsonl(_lines(200, "cancel", slow=True)),
            headers={"content-type": "application/jsonl"},
        )
        assert created.status_code == 200, created.text
        batch_id = created.json()["id"]
        cancelled = b.post(f"/v1/batches/{batch_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        done = wait_finished(a, batch_id, timeout=120)
        assert done["status"] == "cancelled"
        counts = done["request_counts"]
        assert counts["cancelled"] > 0
        assert counts["completed"] + counts["failed"] + counts["cancelled"] == 200


def test_a_post_retried_through_both_replicas_makes_one_batch(replicas: Replicas) -> None:
    body = to_jsonl(_lines(5, "idem"))
    headers = {"content-type": "application/jsonl", "idempotency-key": "replicas-retry-1"}
    with replicas.first.client() as a, replicas.second.client() as b:
        before = {item["id"] for item in a.get("/v1/batches", params={"limit": 100}).json()["data"]}
        first = a.post("/v1/batches", content=body, headers=headers)
        again = b.post("/v1/batches", content=body, headers=headers)
        assert first.status_code == again.status_code == 200, (first.text, again.text)
        assert first.json()["id"] == again.json()["id"]
        after = {item["id"] for item in b.get("/v1/batches", params={"limit": 100}).json()["data"]}
        assert after - before == {first.json()["id"]}
        assert wait_finished(b, first.json()["id"], timeout=120)["status"] == "completed"

"""kill -9 a worker mid-batch run with a caller's key: the next worker carries the same key."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest
import redis
from cryptography.fernet import Fernet

from standins.upstream import StandinUpstream
from tests.chaos.conftest import wait_for_count
from tests.support.batches import line, output_lines, to_jsonl, wait_finished
from tests.support.service import start_service

LINES = 400
CALLER_TOKEN = "sk-chaos-caller-token-19be44"


@pytest.mark.timeout(180)
def test_replacement_worker_runs_the_rest_with_the_callers_key(
    redis_url: str, tmp_path: Path
) -> None:
    with StandinUpstream(latency=0.05, api_key=CALLER_TOKEN) as upstream:
        named = {"own": {"base_url": upstream.base_url, "api_key": "sk-configured", "byok": True}}
        service = start_service(
            redis_url,
            tmp_path,
            log_dir=tmp_path,
            upstreams=orjson.dumps(named).decode(),
            secret_key=Fernet.generate_key().decode(),
            llm_concurrency="8",
            chunk_size="16",
            heartbeat_timeout_ms="3000",
        )
        try:
            lines = [
                line(f"k-{n:04d}", {"model": "summarize", "text": f"Parcel {n} is late. Sorry."})
                for n in range(LINES)
            ]
            with service.client() as client:
                created = client.post(
                    "/v1/batches",
                    content=to_jsonl(lines),
                    headers={
                        "content-type": "application/jsonl",
                        "x-textbatch-provider": "own",
                        "x-textbatch-provider-key": CALLER_TOKEN,
                    },
                )
                assert created.status_code == 200, created.text
                batch_id = created.json()["id"]
                wait_for_count(client, batch_id, LINES // 4)
                service.workers[0].send_signal(signal.SIGKILL)
                service.workers[0].wait()
                service.start_worker()
                batch = wait_finished(client, batch_id, timeout=120)
                output = output_lines(client, batch_id)
        finally:
            service.stop()
        authorizations = set(upstream.authorizations)

    assert batch["request_counts"] == {
        "total": LINES,
        "completed": LINES,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert sorted(item["custom_id"] for item in output) == [f"k-{n:04d}" for n in range(LINES)]
    # Every call, before and after the kill, carried the caller's key and no other.
    assert authorizations == {f"Bearer {CALLER_TOKEN}"}
    stored = redis.Redis.from_url(redis_url)
    try:
        assert stored.exists(f"textbatch:batch:{batch_id}:provider_key") == 0
    finally:
        stored.close()
    assert CALLER_TOKEN not in service.logs()

"""``/metrics``: after a real batch the counters read what happened, and nothing secret shows.

``textbatch serve`` runs the API and a worker as one scrape target; a batch with one
line the stand-in upstream fails is run through it and the scrape compared with the
batch, the stand-in's own record of calls and the bytes sent.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from standins.upstream import StandinUpstream
from tests.support.batches import line, submit, to_jsonl, wait_finished
from tests.support.metrics import Samples, scrape, total, value
from tests.support.serve_process import start_serve, stop_serve
from tests.support.service import free_port, start_service, wait_until_answering

UPSTREAM_KEY = "sk-metrics-upstream-secret"
PRICES = {"standin-model": {"input": 2.0, "output": 8.0}}
FAILING = "[[fail:500]]"
ATTEMPTS = 2
CONCURRENCY = 8
NEWS = "Acme Corp opened a plant in Lyon. Marie Curie said it will employ 400 people."


def batch_lines() -> list[dict[str, Any]]:
    entities = {"organization": "a company", "city": "a city name"}
    labels = [{"name": "business", "rubric": "Is the text about a business?"}]
    return [
        line("m-extract", {"model": "extract", "text": NEWS, "entities": entities}),
        line("m-summarize", {"model": "summarize", "text": NEWS, "max_tokens": 40}),
        line("m-classify", {"model": "classify", "text": NEWS, "labels": labels}),
        line(
            "m-chat",
            {"model": "standin-model", "messages": [{"role": "user", "content": "Say hello."}]},
        ),
        line("m-failing", {"model": "summarize", "text": f"{NEWS} {FAILING}", "max_tokens": 40}),
    ]


@pytest.fixture(scope="module")
def upstream() -> Iterator[StandinUpstream]:
    with StandinUpstream(api_key=UPSTREAM_KEY) as server:
        yield server


def llm_settings(upstream: StandinUpstream, data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    prices = data_dir / "prices.json"
    prices.write_bytes(orjson.dumps(PRICES))
    return {
        "llm_base_url": upstream.base_url,
        "llm_api_key": UPSTREAM_KEY,
        "llm_model": "standin-model",
        "llm_max_attempts": str(ATTEMPTS),
        "llm_backoff_base": "0.05",
        "llm_backoff_max": "0.1",
        "llm_concurrency": str(CONCURRENCY),
        "price_table": str(prices),
        "log_level": "warning",
    }


@pytest.mark.timeout(180)
def test_metrics_of_serve_count_exactly_what_a_batch_did(
    upstream: StandinUpstream, tmp_path: Path
) -> None:
    serve = start_serve(tmp_path / "data", **llm_settings(upstream, tmp_path / "data"))
    try:
        body = to_jsonl(batch_lines())
        with serve.client() as client:
            _, before = scrape(f"{serve.url}/metrics")
            assert value(before, "textbatch_batches", status="completed") == 0
            response = client.post(
                "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
            )
            assert response.status_code == 200, response.text
            batch = wait_finished(client, response.json()["id"])
        text, samples = scrape(f"{serve.url}/metrics")
        key = serve.key
    finally:
        stop_serve(serve)

    assert batch["request_counts"] == {
        "total": 5,
        "completed": 4,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
    }
    finished = "textbatch_lines_finished_total"
    for task in ("extract", "summarize", "classify", "passthrough"):
        assert value(samples, finished, task=task, outcome="succeeded") == 1, task
    assert value(samples, finished, task="summarize", outcome="failed") == 1
    assert total(samples, finished) == 5

    chat_calls = [call for call in upstream.calls if call.path.endswith("/chat/completions")]
    failing_calls = [call for call in chat_calls if FAILING in call.text]
    assert len(failing_calls) == ATTEMPTS
    calls = "textbatch_upstream_calls_total"
    assert value(
        samples, calls, upstream="default", status_class="2xx", retry_reason="none"
    ) == len(chat_calls) - len(failing_calls)
    assert value(
        samples, calls, upstream="default", status_class="5xx", retry_reason="http_500"
    ) == (ATTEMPTS - 1)
    assert value(samples, calls, upstream="default", status_class="5xx", retry_reason="none") == 1
    assert total(samples, calls) == len(chat_calls)
    assert value(
        samples, "textbatch_upstream_call_duration_seconds_count", upstream="default"
    ) == len(chat_calls)
    assert value(samples, "textbatch_upstream_calls_in_flight", upstream="default") == 0
    # The API's limiter and the worker's, each at its maximum: the stand-in kept up.
    assert value(samples, "textbatch_upstream_concurrency_limit", upstream="default") == (
        2 * CONCURRENCY
    )

    usage = batch["usage"]
    tokens = "textbatch_tokens_total"
    assert value(samples, tokens, model="standin-model", kind="input") == usage["input_tokens"]
    assert value(samples, tokens, model="standin-model", kind="output") == usage["output_tokens"]
    assert value(samples, "textbatch_cost_usd_total", model="standin-model") == pytest.approx(
        usage["total_cost"]
    )

    assert value(samples, "textbatch_ingest_lines_total") == 5
    assert value(samples, "textbatch_ingest_bytes_total") == len(body)
    assert value(samples, "textbatch_batches", status="completed") == 1
    assert value(samples, "textbatch_batches", status="in_progress") == 0
    assert any(name == "textbatch_queue_messages" for name, _ in samples)

    for secret in (key, UPSTREAM_KEY, "m-failing", "m-extract", "Acme", "Lyon", "hello"):
        assert secret not in text, secret


def test_metrics_can_be_turned_off(redis_url: str, tmp_path: Path) -> None:
    service = start_service(redis_url, tmp_path, workers=0, metrics="false")
    try:
        assert httpx.get(f"{service.url}/metrics").status_code == 404
        assert httpx.get(f"{service.url}/healthz").status_code == 200
    finally:
        service.stop()


def test_metrics_port_moves_the_scrape_off_the_api_port(redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    service = start_service(redis_url, tmp_path, workers=0, metrics_port=str(port))
    try:
        assert httpx.get(f"{service.url}/metrics").status_code == 404
        _, samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "textbatch_batches", status="completed") >= 0
        assert any(name == "textbatch_queue_messages" for name, _ in samples)
    finally:
        service.stop()


@pytest.mark.timeout(120)
def test_worker_alone_serves_its_own_counters(
    redis_url: str, upstream: StandinUpstream, tmp_path: Path
) -> None:
    service = start_service(redis_url, tmp_path, workers=0, **llm_settings(upstream, tmp_path))
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker", "--metrics-port", str(port)],
        env=service.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/metrics", worker)
        with service.client() as client:
            lines = [line("alone-1", {"model": "summarize", "text": NEWS, "max_tokens": 40})]
            response = submit(client, lines)
            assert response.status_code == 200, response.text
            batch = wait_finished(client, response.json()["id"])
        assert batch["request_counts"]["completed"] == 1
        _, samples = scrape(f"http://127.0.0.1:{port}/metrics")
        finished = "textbatch_lines_finished_total"
        assert value(samples, finished, task="summarize", outcome="succeeded") == 1
        assert total(samples, finished) == 1
        # The API alone counts what it read; the lines ran elsewhere.
        _, api_samples = scrape(f"{service.url}/metrics")
        assert value(api_samples, "textbatch_ingest_lines_total") == 1
        assert total(api_samples, finished) == 0
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        service.stop()


@pytest.mark.timeout(120)
def test_batches_by_status_follow_a_cancel_and_a_rejected_file(
    redis_url: str, tmp_path: Path
) -> None:
    # Two calls at a time of a second each: the batch is still running when cancelled.
    with StandinUpstream(latency=1.0) as slow:
        service = start_service(
            redis_url, tmp_path, llm_base_url=slow.base_url, llm_concurrency="2"
        )
        try:
            url = f"{service.url}/metrics"
            _, before = scrape(url)
            with service.client() as client:
                lines = [line(f"c-{n}", {"model": "summarize", "text": NEWS}) for n in range(20)]
                batch_id = submit(client, lines).json()["id"]
                _, running = scrape(url)
                assert client.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
                assert wait_finished(client, batch_id)["status"] == "cancelled"
                bad = b'{"custom_id": "x", "method": "POST"}\n'
                uploaded = client.post(
                    "/v1/files",
                    files={"file": ("bad.jsonl", bad, "application/jsonl")},
                    data={"purpose": "batch"},
                )
                created = client.post(
                    "/v1/batches",
                    json={
                        "input_file_id": uploaded.json()["id"],
                        "endpoint": "/v1/chat/completions",
                    },
                )
                assert wait_finished(client, created.json()["id"])["status"] == "failed"
            _, after = scrape(url)
        finally:
            service.stop()

    def change(samples: Samples, status: str) -> float:
        return value(samples, "textbatch_batches", status=status) - value(
            before, "textbatch_batches", status=status
        )

    assert change(running, "in_progress") + change(running, "cancelling") == 1
    assert change(after, "cancelled") == 1
    assert change(after, "failed") == 1
    for status in ("in_progress", "cancelling", "completed", "expired"):
        assert change(after, status) == 0, status

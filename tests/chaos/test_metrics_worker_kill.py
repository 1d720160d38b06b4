"""A worker killed under ``serve``: its live gauges leave the scrape, its counters stay."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from standins.upstream import StandinUpstream
from tests.support.batches import line, submit, wait_finished
from tests.support.metrics import scrape, total, value
from tests.support.serve_process import start_serve, stop_serve

CONCURRENCY = 8
NEWS = "Acme Corp opened a plant in Lyon. Marie Curie said it will employ 400 people."
LIMIT = "textbatch_upstream_concurrency_limit"


def worker_pids(serve_pid: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(serve_pid), "-f", "service.cli worker"],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in found.stdout.split()]


def test_killed_worker_leaves_the_gauges_but_not_the_counters(
    steady_upstream: StandinUpstream, tmp_path: Path
) -> None:
    serve = start_serve(
        tmp_path,
        llm_base_url=steady_upstream.base_url,
        llm_concurrency=str(CONCURRENCY),
        log_level="warning",
    )
    try:
        url = f"{serve.url}/metrics"
        with serve.client() as client:
            lines = [line("k-1", {"model": "summarize", "text": NEWS})]
            batch = wait_finished(client, submit(client, lines).json()["id"])
        assert batch["request_counts"]["completed"] == 1
        _, running = scrape(url)
        # The API's limiter and the worker's.
        assert value(running, LIMIT, upstream="default") == 2 * CONCURRENCY

        [worker] = worker_pids(serve.process.pid)
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while value(scrape(url)[1], LIMIT, upstream="default") != CONCURRENCY:
            assert time.monotonic() < deadline, "the dead worker's gauge stayed in the sum"
            time.sleep(0.2)

        _, after = scrape(url)
        finished = "textbatch_lines_finished_total"
        assert value(after, finished, task="summarize", outcome="succeeded") == 1
        assert total(after, "textbatch_upstream_calls_total") == total(
            running, "textbatch_upstream_calls_total"
        )
    finally:
        stop_serve(serve)

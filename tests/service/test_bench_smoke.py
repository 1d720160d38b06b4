"""The benchmark harness runs end to end; its timings are reported, never asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = {"1", "2", "3", "4", "5", "6", "7"}


@pytest.mark.timeout(260)
def test_quick_benchmark_runs_every_scenario_and_writes_its_figures(tmp_path: Path) -> None:
    # Given the harness in its quick sizes, writing into a temporary directory
    out = tmp_path / "results.json"

    # When it runs as a user runs it
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        timeout=250,
    )

    # Then it succeeds and the JSON holds every scenario with figures and checks
    output = finished.stdout.decode() + finished.stderr.decode()
    assert finished.returncode == 0, output[-5000:]
    document = orjson.loads(out.read_bytes())
    assert set(document["scenarios"]) == SCENARIOS
    for number, scenario in document["scenarios"].items():
        assert scenario["figures"], f"scenario {number} has no figures"
        assert scenario["checks"], f"scenario {number} has no checks"
        # LiteLLM is never a dependency: its side of scenario 7 is empty when it is absent.
        measured = [c for c in scenario["checks"] if "LiteLLM" not in c["name"]]
        assert all(check["value"] is not None for check in measured), number
    assert document["machine"]["cpus"] >= 1
    assert document["upstream_capacity"]["no_latency"]["calls_per_s"] > 0
    assert "redis" in document["scenarios"]["3"]["figures"]
    assert "profile" in document["scenarios"]["3"]["figures"]
    assert b"scenario 6" in finished.stdout
    gateway = document["scenarios"]["7"]["figures"]
    assert gateway["textbatch"]["load"]["requests"] > 0
    assert gateway["textbatch"]["load"]["errors"] == 0

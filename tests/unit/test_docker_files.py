"""The Dockerfile and compose.yaml, checked as far as a machine without a Docker engine allows.

Nothing here builds an image or starts a container: the files are parsed and their
command lines and wiring checked against the CLI, and the entrypoint's privilege
drop is run for real on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        row = raw.strip()
        if row and not row.startswith("#"):
            keyword, _, rest = row.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list)
    return [str(item) for item in parsed]


def _cli_commands() -> set[str]:
    shown = subprocess.run(
        [sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True, check=True
    )
    return set(re.findall(r"^  (\w+)\s", shown.stdout, re.MULTILINE))


def test_the_image_runs_serve_with_data_in_the_volume() -> None:
    steps = _instructions()
    (cmd,) = [value for keyword, value in steps if keyword == "CMD"]
    assert _exec_form(cmd) == ["textbatch", "serve"]
    env = " ".join(value for keyword, value in steps if keyword == "ENV")
    assert "TEXTBATCH_DATA_DIR=/data" in env and "TEXTBATCH_HOST=0.0.0.0" in env
    assert ("VOLUME", '["/data"]') in steps
    (entrypoint,) = [value for keyword, value in steps if keyword == "ENTRYPOINT"]
    assert _exec_form(entrypoint) == ["textbatch-entrypoint"]
    assert any(
        keyword == "COPY" and value.endswith("/usr/local/bin/textbatch-entrypoint")
        for keyword, value in steps
    )


def test_the_image_has_a_health_check_on_readyz() -> None:
    (check,) = [value for keyword, value in _instructions() if keyword == "HEALTHCHECK"]
    assert "--interval=" in check
    assert "http://127.0.0.1:8000/readyz" in check


def test_dependencies_are_installed_before_the_code_is_copied() -> None:
    steps = _instructions()
    order = [f"{keyword} {value}" for keyword, value in steps]
    copy_pyproject = next(i for i, s in enumerate(order) if s.startswith("COPY pyproject.toml"))
    install_deps = next(i for i, s in enumerate(order) if "pip install" in s and "-r " in s)
    copy_code = next(i for i, s in enumerate(order) if s.startswith("COPY service"))
    assert copy_pyproject < install_deps < copy_code
    # The code's own install adds no dependency of its own (they are in the cached layer).
    install_code = next(i for i, s in enumerate(order) if "--no-deps ." in s)
    assert install_code > copy_code
    # The layer before the code holds only pyproject.toml.
    assert [s for s in order[:install_deps] if s.startswith("COPY")] == [order[copy_pyproject]]


def test_the_dependency_layer_installs_what_pyproject_lists(tmp_path: Path) -> None:
    # The same one-liner the Dockerfile runs, on this checkout's pyproject.toml.
    (run,) = [v for k, v in _instructions() if k == "RUN" and "tomllib" in v]
    command = run.split(">", 1)[0].strip()
    done = subprocess.run(
        shlex.split(command.replace("python -c", f"{sys.executable} -c", 1)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = done.stdout.split("\n")
    assert any(item.startswith("fastapi") for item in listed)
    assert any(item.startswith("swagger-ui-bundle") for item in listed)


def test_compose_runs_api_workers_and_redis_apart_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker"}
    commands = _cli_commands()
    api, worker, redis = services["api"], services["worker"], services["redis"]
    assert api["command"] == ["textbatch", "api"] and "api" in commands
    assert worker["command"] == ["textbatch", "worker"] and "worker" in commands
    assert worker["deploy"]["replicas"] >= 2
    # API and workers share the one Redis, by its service name.
    for role in (api, worker):
        url = role["environment"]["TEXTBATCH_REDIS_URL"]
        assert re.fullmatch(r"redis://redis:6379/\d+", url), url
        assert role["depends_on"]["redis"]["condition"] == "service_healthy"
    # Acknowledged writes need an append-only Redis.
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "ports" not in redis, "Redis stays on the project's network"
    assert "valkey-cli" in redis["healthcheck"]["test"]
    assert any("/readyz" in part for part in api["healthcheck"]["test"])
    assert api["ports"] == ["8000:8000"]
    assert "/data" in api["volumes"][0]


def _run_entrypoint(data: Path, run_as: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(ROOT / "docker" / "entrypoint.sh"),
            "sh",
            "-c",
            'id -u; touch "$TEXTBATCH_DATA_DIR/x"',
        ],
        env={**os.environ, "TEXTBATCH_DATA_DIR": str(data), "TEXTBATCH_RUN_AS": run_as},
        capture_output=True,
        text=True,
    )


def test_the_entrypoint_makes_a_root_owned_data_dir_writable_then_drops_root() -> None:
    # A directory others can reach, as a bind mount's is: pytest's own are private.
    parent = Path(tempfile.mkdtemp())
    try:
        parent.chmod(0o755)
        data = parent / "data"
        data.mkdir()
        if os.geteuid() != 0:
            # Started as a user (docker run --user …): the command runs as that user, as is.
            done = _run_entrypoint(data, "nobody")
            assert done.returncode == 0, done.stderr
            assert int(done.stdout.strip()) == os.geteuid()
            return
        os.chown(data, 0, 0)
        data.chmod(0o755)
        done = _run_entrypoint(data, "nobody")
        assert done.returncode == 0, done.stderr
        nobody = int(subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True).stdout)
        assert int(done.stdout.strip()) == nobody
        assert (data / "x").stat().st_uid == nobody
        assert data.stat().st_uid == nobody
    finally:
        shutil.rmtree(parent)

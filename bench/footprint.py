"""What data costs in Redis: memory and append-only file per batch line and per uploaded MB.

``python -m bench.footprint [--lines 10000] [--upload-mb 200]`` starts a private
Valkey, ``textbatch api`` and one ``textbatch worker`` (offline engine), then

- runs a batch of short ``summarize`` lines and reads ``INFO memory``
  ``used_memory`` and the size of Redis's directory (its AOF) before and after;
- uploads a file of that many MB (generated on the fly) and reads the same, and
  the API process's ``VmRSS``/``VmHWM`` around it;
- deletes both and reads the memory again, which retention bounds the same way.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from bench.redis_probe import bench_redis

BOUNDARY = "footprint-boundary"
MB = 1 << 20


def _redis_figures(url: str) -> tuple[int, int]:
    """``used_memory``, and the bytes of every file in Redis's directory (AOF and RDB)."""
    with redis.Redis.from_url(url) as client:
        memory: dict[str, Any] = client.info("memory")
        directory = Path(str(client.config_get("dir")["dir"]))
    on_disk = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    return int(memory["used_memory"]), on_disk


def _rss_kb(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = row.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0])
    return fields


def _multipart(size: int) -> Iterator[bytes]:
    yield (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    ).encode()
    sent = 0
    while sent < size:
        # Random bytes: a repeating pattern would shrink in an RDB-preamble AOF rewrite.
        block = os.urandom(min(MB, size - sent))
        sent += len(block)
        yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _wait(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    while True:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] in {"completed", "failed", "cancelled", "expired"}:
            return batch
        time.sleep(0.2)


def _start(url: str, data_dir: Path, key: str, port: int) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTBATCH_")}
    env.update(
        TEXTBATCH_REDIS_URL=url,
        TEXTBATCH_API_KEYS=key,
        TEXTBATCH_DATA_DIR=str(data_dir),
        TEXTBATCH_PORT=str(port),
        TEXTBATCH_LOG_LEVEL="warning",
    )
    command = [sys.executable, "-m", "service.cli"]
    return [subprocess.Popen([*command, role], env=env) for role in ("api", "worker")]


def measure(lines: int, upload_mb: int) -> dict[str, Any]:
    key, port = f"footprint-{secrets.token_hex(8)}", 18_000 + secrets.randbelow(2000)
    with bench_redis() as (url, _), tempfile.TemporaryDirectory() as data_dir:
        processes = _start(url, Path(data_dir), key, port)
        try:
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"x-api-key": key}, timeout=600
            )
            for _ in range(600):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            figures: dict[str, Any] = {}
            body = b"".join(
                orjson.dumps(
                    {
                        "custom_id": f"line-{n}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {"model": "summarize", "text": f"Short line number {n} here."},
                    }
                )
                + b"\n"
                for n in range(lines)
            )
            memory, aof = _redis_figures(url)
            created = client.post(
                "/v1/batches", content=body, headers={"content-type": "application/jsonl"}
            ).json()
            _wait(client, created["id"])
            memory_after, aof_after = _redis_figures(url)
            figures["line_memory_bytes"] = round((memory_after - memory) / lines)
            figures["line_disk_bytes"] = round((aof_after - aof) / lines)
            client.delete(f"/v1/batches/{created['id']}")
            figures["memory_left_after_delete_bytes"] = _redis_figures(url)[0] - memory

            pid = processes[0].pid
            rss, (memory, aof) = _rss_kb(pid), _redis_figures(url)
            uploaded = client.post(
                "/v1/files",
                content=_multipart(upload_mb * MB),
                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
            ).json()
            with client.stream("GET", f"/v1/files/{uploaded['id']}/content") as download:
                read = sum(len(chunk) for chunk in download.iter_bytes())
            rss_after, (memory_after, aof_after) = _rss_kb(pid), _redis_figures(url)
            figures["upload_mb"] = upload_mb
            figures["upload_read_back_bytes"] = read
            figures["api_rss_growth_mb"] = round((rss_after["VmRSS"] - rss["VmRSS"]) / 1024, 1)
            figures["api_peak_growth_mb"] = round((rss_after["VmHWM"] - rss["VmHWM"]) / 1024, 1)
            figures["redis_memory_per_stored_mb"] = round(
                (memory_after - memory) / MB / upload_mb, 3
            )
            figures["disk_mb_per_stored_mb"] = round((aof_after - aof) / MB / upload_mb, 3)
            client.delete(f"/v1/files/{uploaded['id']}")
            figures["file_memory_left_after_delete_mb"] = round(
                (_redis_figures(url)[0] - memory) / MB, 2
            )
            return figures
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--upload-mb", type=int, default=200)
    args = parser.parse_args()
    print(orjson.dumps(measure(args.lines, args.upload_mb), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

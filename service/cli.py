"""The ``textbatch`` command: ``serve`` (API and workers together), ``api`` and ``worker`` apart."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from service.api.app import create_app
from service.api.server import build_server
from service.auth import ensure_generated_key
from service.data_dir_lock import DataDirInUse, DataDirLock
from service.redis_server import EmbeddedValkey, resolve_redis_url
from service.runtime import die_with_parent, tune_garbage_collector, use_fast_event_loop
from service.settings import Settings, load_settings
from service.worker.chunk_runner import run_worker

log = logging.getLogger("textbatch")

# A stopping worker records what it finished and gives back the rest within this long.
WORKER_STOP_SECONDS = 4.0


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _announce_key(settings: Settings) -> None:
    """Make sure the service is never open: generate and print a key when none is set."""
    if settings.configured_api_keys():
        return
    key, created = ensure_generated_key(settings.data_dir)
    where = settings.data_dir / "api-key"
    verb = "Generated" if created else "Using"
    print(f"{verb} API key (kept in {where}):\n\n    {key}\n", flush=True)


def _serve_http(settings: Settings, redis_url: str) -> None:
    app = create_app(settings, redis_url)
    server = build_server(app, settings)
    # uvicorn re-raises the Ctrl-C it handled; the shutdown was orderly, so end quietly.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


def _start_workers(count: int, redis_url: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "TEXTBATCH_REDIS_URL": redis_url}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker"], env=env, preexec_fn=die_with_parent
        )
        for _ in range(count)
    ]


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + WORKER_STOP_SECONDS
    for process in workers:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # Its unfinished chunks are not lost: the broker hands them to the next worker.
            process.kill()
            process.wait()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """SIGTERM (systemd, ``docker stop``, supervisors) stops the service as Ctrl-C does.

    uvicorn handles SIGINT and SIGTERM while it serves, then restores this handler and
    raises the signal again, which lands here: the cleanup below runs either way. A
    closed terminal's SIGHUP would otherwise end this process alone, leaving the
    embedded Valkey (in a process group of its own) running.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _hang_up)


def _hang_up(signum: int, frame: FrameType | None) -> None:
    # As SIGTERM, so uvicorn shuts down in order if it is serving (it ignores SIGHUP).
    signal.raise_signal(signal.SIGTERM)


def _ignore_stop_signals() -> None:
    # A second Ctrl-C must not cut the cleanup short and leave children behind.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def _lock_data_dir(settings: Settings) -> DataDirLock | None:
    """Hold the data directory when this process will run the embedded Valkey on it."""
    if settings.redis_url:
        return None
    try:
        return DataDirLock.acquire(settings.data_dir)
    except DataDirInUse as exc:
        sys.exit(f"textbatch: {exc}")


def _start_redis(
    settings: Settings, lock: DataDirLock | None, role: str
) -> tuple[str, EmbeddedValkey | None]:
    keep_open = [lock.fd] if lock is not None else []
    redis_url, embedded = resolve_redis_url(settings, keep_open=keep_open)
    if lock is not None and embedded is not None:
        lock.record(f"textbatch {role} PID {os.getpid()} (embedded Valkey PID {embedded.pid})")
    return redis_url, embedded


def command_serve(settings: Settings, workers: int) -> None:
    _stop_on_signals()
    lock = _lock_data_dir(settings)
    embedded: EmbeddedValkey | None = None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _announce_key(settings)
        redis_url, embedded = _start_redis(settings, lock, "serve")
        processes = _start_workers(workers, redis_url)
        _serve_http(settings, redis_url)
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_stop_signals()
        # Workers first, so they record what they finished; Valkey last.
        _stop_workers(processes)
        _stop_embedded(embedded)
        if lock is not None:
            lock.release()


def command_api(settings: Settings) -> None:
    _stop_on_signals()
    lock = _lock_data_dir(settings)
    embedded: EmbeddedValkey | None = None
    try:
        _announce_key(settings)
        redis_url, embedded = _start_redis(settings, lock, "api")
        if embedded is not None:
            hint = f"start workers with TEXTBATCH_REDIS_URL={redis_url}"
            print(f"Embedded Redis at {redis_url}; {hint}", flush=True)
        _serve_http(settings, redis_url)
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_stop_signals()
        _stop_embedded(embedded)
        if lock is not None:
            lock.release()


def command_worker(settings: Settings) -> None:
    if settings.redis_url is None:
        sys.exit("textbatch worker needs TEXTBATCH_REDIS_URL: the Redis the API queues into.")
    run_worker(settings, settings.redis_url)


def _stop_embedded(embedded: EmbeddedValkey | None) -> None:
    if embedded is not None:
        embedded.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="textbatch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API and workers together")
    api = commands.add_parser("api", help="run the HTTP API only")
    for sub in (serve, api):
        sub.add_argument("--host", help="address to listen on (default 127.0.0.1)")
        sub.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    commands.add_parser("worker", help="run a worker that executes queued lines")
    args = parser.parse_args(argv)

    overrides = {
        name: getattr(args, name)
        for name in ("host", "port")
        if getattr(args, name, None) is not None
    }
    settings = load_settings(**overrides)
    _configure_logging(settings)
    # Before anything makes a loop: uvicorn's and the worker's loops are then uvloop's.
    use_fast_event_loop()
    tune_garbage_collector()
    if args.command == "serve":
        command_serve(settings, max(1, args.workers))
    elif args.command == "api":
        command_api(settings)
    else:
        command_worker(settings)


if __name__ == "__main__":
    main()

"""The ``textbatch`` command: ``serve``, ``api`` and ``worker`` run the service; the client
commands (``submit``, ``batches``, ``files``, ``prompts``, ``key``) talk to it over HTTP."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version as _package_version
from types import FrameType

import click

from service.api.app import create_app
from service.api.server import build_server
from service.api.webhooks import batch_renderer
from service.auth import ensure_generated_key
from service.client.commands import add_client_commands
from service.data_dir_lock import DataDirInUse, DataDirLock
from service.embedded_access import shown_redis_url
from service.llm.factory import describe_backend
from service.llm.pricing import PriceTable
from service.observability.exposition import (
    drop_gauges_of_ended,
    fresh_multiprocess_dir,
    mark_process_dead,
    remove_multiprocess_dir,
    scrape_registry,
    serve_on_port,
)
from service.redis_server import EmbeddedPortInUse, EmbeddedValkey, resolve_redis_url
from service.runtime import die_with_parent, tune_garbage_collector, use_fast_event_loop
from service.settings import Settings
from service.settings_check import fail_on_settings, settings_or_exit
from service.store.eviction_check import check_eviction_policy
from service.worker.chunk_runner import run_worker

log = logging.getLogger("textbatch")

# A stopping worker records what it finished and gives back the rest within this long.
WORKER_STOP_SECONDS = 4.0


def version() -> str:
    try:
        return _package_version("textbatch")
    except Exception:  # not installed, only on the path
        return "unknown"


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
    if created:
        print(f"Generated API key (kept in {where}):\n\n    {key}\n", flush=True)
    else:
        # Not the key itself: output often ends up in logs (a container's, a journal).
        print(f"Using the API key kept in {where} (show it with: textbatch key)", flush=True)


def _serve_http(settings: Settings, redis_url: str) -> None:
    app = create_app(settings, redis_url)
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    log.info("LLM backend: %s", describe_backend(settings))
    log.info("API docs at http://%s:%d/docs", shown_host, settings.port)
    log.info("Dashboard at http://%s:%d/dashboard", shown_host, settings.port)
    server = build_server(app, settings)
    # uvicorn re-raises the Ctrl-C it handled; the shutdown was orderly, so end quietly.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()


def _start_workers(count: int, redis_url: str) -> list[subprocess.Popen[bytes]]:
    """Workers that start with Ctrl-C ignored: one pressed while a worker still imports
    would end it with a traceback. The ignored SIGINT is inherited, and Python installs
    no handler of its own over it; ``run_worker`` sets one once the worker is up, and
    serve stops workers with SIGTERM anyway."""
    env = {**os.environ, "TEXTBATCH_REDIS_URL": redis_url}
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return [
            subprocess.Popen(
                [sys.executable, "-m", "service.cli", "worker"],
                env=env,
                preexec_fn=die_with_parent,
            )
            for _ in range(count)
        ]
    finally:
        signal.signal(signal.SIGINT, previous)


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
        mark_process_dead(process.pid)


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
    try:
        redis_url, embedded = resolve_redis_url(settings, keep_open=keep_open)
    except EmbeddedPortInUse as exc:
        fail_on_settings(str(exc))
    if lock is not None and embedded is not None:
        lock.record(f"textbatch {role} PID {os.getpid()} (embedded Valkey PID {embedded.pid})")
    if embedded is None:
        _refuse_evicting_redis(redis_url)
    return redis_url, embedded


def _refuse_evicting_redis(redis_url: str) -> None:
    """Stop before starting anything if the shared Redis would evict the service's data."""
    verdict = check_eviction_policy(redis_url)
    if verdict is None:
        return  # not reachable now: the service waits for it, and checks nothing more
    if verdict.refuse is not None:
        fail_on_settings(f"TEXTBATCH_REDIS_URL: {verdict.refuse}")
    if verdict.warn is not None:
        log.warning("%s", verdict.warn)


def command_serve(settings: Settings, workers: int) -> None:
    _stop_on_signals()
    lock = _lock_data_dir(settings)
    embedded: EmbeddedValkey | None = None
    processes: list[subprocess.Popen[bytes]] = []
    # Before any metric exists: the API here and the workers started below are one target.
    metrics_dir = fresh_multiprocess_dir(settings.data_dir)
    try:
        _announce_key(settings)
        redis_url, embedded = _start_redis(settings, lock, "serve")
        processes = _start_workers(workers, redis_url)
        drop_gauges_of_ended(processes)
        _serve_http(settings, redis_url)
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_stop_signals()
        # Workers first, so they record what they finished; Valkey last.
        _stop_workers(processes)
        _stop_embedded(embedded)
        remove_multiprocess_dir(metrics_dir)
        if lock is not None:
            lock.release()


def command_api(settings: Settings) -> None:
    _stop_on_signals()
    lock = _lock_data_dir(settings)
    embedded: EmbeddedValkey | None = None
    try:
        _announce_key(settings)
        redis_url, embedded = _start_redis(settings, lock, "api")
        if embedded is not None and embedded.port is not None:
            # The URL carries the password: name the file it is kept in instead.
            shown = shown_redis_url(settings.data_dir, embedded.port)
            print(f'Embedded Valkey; start workers with TEXTBATCH_REDIS_URL="{shown}"', flush=True)
        _serve_http(settings, redis_url)
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_stop_signals()
        _stop_embedded(embedded)
        if lock is not None:
            lock.release()


def command_worker(settings: Settings, metrics_port: int | None = None) -> None:
    if settings.redis_url is None:
        sys.exit("textbatch worker needs TEXTBATCH_REDIS_URL: the Redis the API queues into.")
    _refuse_evicting_redis(settings.redis_url)
    if metrics_port is not None:
        # Its own metrics, or with PROMETHEUS_MULTIPROC_DIR set those of the directory's processes.
        try:
            serve_on_port(metrics_port, settings.host, scrape_registry())
        except OSError as exc:
            fail_on_settings(f"--metrics-port {metrics_port}: {exc.strerror}")
    run_worker(settings, settings.redis_url, batch_renderer(settings))


def _stop_embedded(embedded: EmbeddedValkey | None) -> None:
    if embedded is not None:
        embedded.stop()


@click.group(
    help="textbatch: a batch service for extract, summarize and classify over LLMs.\n\n"
    "Server commands run the service; client commands talk to a running one over HTTP "
    "(TEXTBATCH_URL, default http://127.0.0.1:8000).",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(
    version(), "--version", "-V", prog_name="textbatch", message="%(prog)s %(version)s"
)
def textbatch() -> None:
    pass


def _server_settings(host: str | None, port: int | None) -> Settings:
    overrides = {
        name: value for name, value in (("host", host), ("port", port)) if value is not None
    }
    settings = settings_or_exit(**overrides)
    try:
        PriceTable.load(settings.price_table)
    except ValueError as exc:
        fail_on_settings(f"TEXTBATCH_PRICE_TABLE: {exc}")
    _configure_logging(settings)
    # Before anything makes a loop: uvicorn's and the worker's loops are then uvloop's.
    use_fast_event_loop()
    tune_garbage_collector()
    return settings


_host_option = click.option("--host", help="address to listen on (default 127.0.0.1)")
_port_option = click.option("--port", type=int, help="port to listen on (default 8000)")


@textbatch.command("serve", help="[server] run the API, workers and embedded Valkey together")
@_host_option
@_port_option
@click.option("--workers", type=int, default=1, show_default=True, help="worker processes")
def _serve(host: str | None, port: int | None, workers: int) -> None:
    command_serve(_server_settings(host, port), max(1, workers))


@textbatch.command("api", help="[server] run the HTTP API only")
@_host_option
@_port_option
def _api(host: str | None, port: int | None) -> None:
    command_api(_server_settings(host, port))


@textbatch.command("worker", help="[server] run a worker that executes queued lines")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="serve this worker's Prometheus metrics on this port (at /metrics)",
)
def _worker(metrics_port: int | None) -> None:
    command_worker(_server_settings(None, None), metrics_port)


add_client_commands(textbatch)


def main(argv: Sequence[str] | None = None) -> None:
    textbatch.main(args=list(argv) if argv is not None else None, prog_name="textbatch")


if __name__ == "__main__":
    main()

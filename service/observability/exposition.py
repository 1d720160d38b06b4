"""Where the metrics live between processes, and how a scrape reads them.

``textbatch serve`` runs the API and its workers on one machine as one scrape target:
prometheus_client's multi-process mode, each process writing its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape summing them. The directory must be empty
when the processes start, so serve makes a fresh one per run under the data directory.
A process started on its own (``textbatch api``, ``textbatch worker``) without that
variable keeps its metrics in memory and serves only its own.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.observability.metrics import defined

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SERVE_DIR_PREFIX = "serve-"
# How often ended processes are looked for.
_WATCH_SECONDS = 1.0


def fresh_multiprocess_dir(data_dir: Path) -> Path:
    """Make an empty directory for this serve's processes and point the environment at it.

    One per serve process, so two services on one data directory (each with its own
    Redis) never sum each other's files; those of serves no longer running are removed.
    """
    parent = data_dir / "metrics"
    parent.mkdir(parents=True, exist_ok=True)
    for old in parent.glob(f"{_SERVE_DIR_PREFIX}*"):
        pid = old.name.removeprefix(_SERVE_DIR_PREFIX)
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    directory = parent / f"{_SERVE_DIR_PREFIX}{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    os.environ[MULTIPROC_ENV] = str(directory)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:
        # It picks where values live when imported; metrics made from now on use the files.
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    return directory


def remove_multiprocess_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def multiprocess_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV, "").strip()
    return Path(value) if value else None


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges; its counters stay in the sums."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def drop_gauges_of_ended(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Reap ``processes`` as they end (from a thread), so a scrape stops summing their gauges."""
    marked: set[int] = set()

    def watch() -> None:
        while len(marked) < len(processes):
            for process in processes:
                if process.pid not in marked and process.poll() is not None:
                    mark_process_dead(process.pid)
                    marked.add(process.pid)
            time.sleep(_WATCH_SECONDS)

    threading.Thread(target=watch, name="textbatch-metrics-reaper", daemon=True).start()


class ReadAtScrape:
    """A gauge family whose values are read when scraped (from Redis, say), by one label.

    A failing read leaves the family out of that scrape rather than failing the scrape.
    """

    def __init__(
        self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, float]]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.read = read

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            values = self.read()
        except Exception as exc:
            log.warning("metrics: could not read %s (%s)", self.name, type(exc).__name__)
            return []
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, value in sorted(values.items()):
            family.add_metric([label_value], value)
        return [family]


def scrape_registry(extra: Iterable[Any] = ()) -> CollectorRegistry:
    """What a scrape reads: every process's metrics (or this one's), and ``extra`` collectors."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    defined()  # so a scrape before any work already lists the families
    collectors = CollectorRegistry(auto_describe=False)
    if multiprocess_dir() is None:
        collectors.register(_Forwarded(REGISTRY))
    else:
        multiprocess.MultiProcessCollector(collectors)  # type: ignore[no-untyped-call]
    for collector in extra:
        collectors.register(collector)
    return collectors


def render(collectors: CollectorRegistry) -> bytes:
    """The Prometheus text format of a scrape (blocking: it may read files and Redis)."""
    from prometheus_client import generate_latest

    return generate_latest(collectors)


def serve_on_port(port: int, host: str, collectors: CollectorRegistry) -> Callable[[], None]:
    """Serve ``/metrics`` from a thread of this process, on a port of its own; returns its stop."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=collectors)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


class _Forwarded:
    """This process's default registry, as one collector of the scrape's registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()

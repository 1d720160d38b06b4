"""How every textbatch process runs: its event loop, its garbage collector, its lifetime.

uvloop's loop and transports are written in C: a worker spends much of its
time scheduling callbacks and writing to sockets, and on uvloop that costs
far less CPU. Where uvloop is not installed (it does not build on Windows)
the standard loop is used.

A worker allocates a few dicts per line and per call; with CPython's default
thresholds the cyclic garbage collector ran about 700 times during a
10,000-line run and took 1.4 s of it, in pauses of up to 150 ms that stall
every call in flight. Almost nothing a line allocates is cyclic (reference
counting frees it), so collections are made rarer, and the objects loaded at
start-up are frozen out of them.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import signal
import sys

log = logging.getLogger(__name__)


def use_fast_event_loop() -> bool:
    """Make loops created from now on uvloop's; False when uvloop is missing."""
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed; using the standard asyncio event loop")
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


# Allocations (net of frees) between young-generation collections; CPython's default is 700.
GC_YOUNG_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Collect rarely, and never rescan what start-up loaded (call once start-up is done)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before it runs: end with SIGTERM when the process that started it dies.

    A ``textbatch serve`` killed with SIGKILL runs no cleanup; without this its
    workers and embedded Valkey would run on, unowned. Linux only; elsewhere a no-op.
    Call it from the thread that stays alive for the child's lifetime (the main one):
    the signal follows the death of the thread that started the child.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

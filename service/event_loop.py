"""The asyncio event loop implementation every textbatch process runs on.

uvloop's loop and transports are written in C: a worker spends much of its
time scheduling callbacks and writing to sockets, and on uvloop that costs
far less CPU. Where uvloop is not installed (it does not build on Windows)
the standard loop is used.
"""

from __future__ import annotations

import asyncio
import logging

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

"""The Dramatiq side of textbatch: the broker, and queueing a batch as chunk messages.

A batch is queued as one message per chunk of lines (``chunk_size``), not per
line, to keep broker round-trips low. The API enqueues plain ``Message``s by
actor name, so it never imports the worker that declares the actor.
"""

from __future__ import annotations

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, Retries, ShutdownNotifications

from service.settings import Settings

RUN_CHUNK_ACTOR = "run_chunk"
# Dramatiq retries a chunk whose run raised (Redis blip, crash inside the runner);
# re-running is safe because results are recorded once.
CHUNK_MAX_RETRIES = 20


def build_broker(settings: Settings, redis_url: str) -> RedisBroker:
    """A Redis broker tuned so a dead worker's chunks come back in seconds, not minutes."""
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url,
        namespace="textbatch-queue",
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        maintenance_chance=settings.maintenance_chance,
        middleware=[
            AsyncIO(),
            ShutdownNotifications(),
            Retries(max_retries=CHUNK_MAX_RETRIES, min_backoff=500, max_backoff=30_000),
        ],
    )
    broker.declare_queue(settings.queue_name)
    return broker


class ChunkDispatcher:
    """Queues the chunk messages that cover a batch's lines."""

    def __init__(self, broker: RedisBroker, queue_name: str, chunk_size: int) -> None:
        self.broker = broker
        self.queue_name = queue_name
        self.chunk_size = chunk_size

    def chunk_messages(self, batch_id: str, total: int) -> list[Message[None]]:
        return [
            Message(
                queue_name=self.queue_name,
                actor_name=RUN_CHUNK_ACTOR,
                args=(batch_id, start, min(start + self.chunk_size, total)),
                kwargs={},
                options={},
            )
            for start in range(0, total, self.chunk_size)
        ]

    def queued_messages(self) -> int:
        """Messages of the line queue anywhere: waiting, delayed or held by a worker (blocking)."""
        return int(self.broker.do_qsize(self.queue_name))

    def dispatch(self, batch_id: str, total: int) -> int:
        """Enqueue every chunk of the batch (blocking); returns how many messages."""
        messages = self.chunk_messages(batch_id, total)
        for message in messages:
            self.broker.enqueue(message)
        return len(messages)

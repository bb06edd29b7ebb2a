"""Following a partition over Server-Sent Events.

Catch-up and live are one loop: open the subscription first, then read the log by cursor until
caught up, then wait for a notification (or the poll timeout) and read again. When the server
starts shutting down, the stream ends cleanly and the client resumes elsewhere. Every event a client
gets comes from a read after its cursor, so the switch from catch-up to live can neither skip nor
repeat an event, and a lost notification only delays the next read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Collection

import anyio

from app.http.metrics import Metrics
from domain.errors import SpineError
from domain.events import EncodedEvent
from domain.partition import Partition
from domain.ports import EventSpine, Notifier, Subscription

log = logging.getLogger(f"spine.{__name__}")

PAGE_SIZE = 500
HEARTBEAT = b": heartbeat\n\n"


def sse_frame(event: EncodedEvent, *, named: bool = True) -> bytes:
    """One event's frame. Unnamed (no `event:` line), a browser dispatches it as `message`, which a
    page's `onmessage` receives; the type is in the data either way (the stored Event's JSON)."""
    position, type_, body = event
    if not named:
        return b"id: %d\ndata: %s\n\n" % (position, body)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (position, type_.encode(), body)


async def follow(
    spine: EventSpine,
    notifier: Notifier,
    metrics: Metrics,
    partition: Partition,
    *,
    after: int,
    stream: str | None,
    types: Collection[str],
    retry_ms: int,
    heartbeat_seconds: float,
    poll_seconds: float,
    draining: anyio.Event,
    named: bool = True,
) -> AsyncIterator[bytes]:
    metrics.sse_clients.inc()
    try:
        yield b"retry: %d\n\n" % retry_ms
        async with notifier.subscribe(partition) as subscription:
            cursor = after
            last_write = time.monotonic()
            while not draining.is_set():
                page = await spine.read_encoded(
                    partition, after=cursor, limit=PAGE_SIZE, stream=stream, types=types
                )
                if page.events:
                    yield b"".join(sse_frame(event, named=named) for event in page.events)
                    metrics.sse_events.inc(len(page.events))
                    last_write = time.monotonic()
                cursor = page.next
                if cursor < page.head:
                    continue  # still catching up
                until_heartbeat = heartbeat_seconds - (time.monotonic() - last_write)
                if until_heartbeat <= 0:
                    yield HEARTBEAT
                    last_write = time.monotonic()
                    continue
                await _news_or_drain(subscription, page.head, min(poll_seconds, until_heartbeat), draining)
    except SpineError as exc:
        # Headers are sent: the only honest answer left is to end the stream; the client resumes
        # with its Last-Event-ID.
        log.warning("sse follower ended", extra={"error_code": exc.error_code, "partition": partition.key})
    finally:
        metrics.sse_clients.dec()


async def _news_or_drain(
    subscription: Subscription, head: int, timeout: float, draining: anyio.Event
) -> None:
    """Wait for an event past `head`, the timeout, or the server starting to shut down."""
    async with anyio.create_task_group() as tg:

        async def news() -> None:
            await subscription.wait(head, timeout)
            tg.cancel_scope.cancel()

        async def drain() -> None:
            await draining.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(news)
        tg.start_soon(drain)

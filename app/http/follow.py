"""Following a partition over Server-Sent Events.

A follower first catches up by itself, reading the log by cursor (with its filters) until it
reaches the head. Then it joins its partition's shared reader (`app.http.fanout`): from there on
it sends what that reader read once for every follower, filtered for it, and a `:` heartbeat
after `heartbeat_seconds` without a frame. Every frame is of an event past the follower's
cursor, which only moves forward, so neither the catch-up nor the switch to the shared reader can
skip or repeat an event.

The stream ends, and the client resumes with its Last-Event-ID, when the server starts shutting
down, when a read fails, or when the follower falls too far behind the shared reader (it does
not read what it is sent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Collection

import anyio

from app.http.fanout import PAGE_SIZE, Fanout, Framing, Selection, sse_frame
from app.http.metrics import Metrics
from domain.errors import SpineError
from domain.events import EncodedPage
from domain.partition import Partition
from domain.ports import EventSpine

log = logging.getLogger(f"spine.{__name__}")

HEARTBEAT = b": heartbeat\n\n"
_REPORT_EVERY = 64  # events sent between two additions to the `spine_sse_events_sent` counter


async def follow(
    spine: EventSpine,
    fanout: Fanout,
    metrics: Metrics,
    partition: Partition,
    *,
    after: int,
    stream: str | None,
    types: Collection[str],
    retry_ms: int,
    heartbeat_seconds: float,
    draining: anyio.Event,
    named: bool = True,
    frame: Framing | None = None,
    truncated_through: int = 0,
) -> AsyncIterator[bytes]:
    """The SSE body of one follower; `frame` makes its frames instead of the stored events'.

    A cursor below `truncated_through` (retention may have removed events up to it) is told so by
    a comment first: the catch-up then sends what survived, never an error."""
    metrics.sse_clients.inc()
    unreported = 0  # events sent and not yet counted: the counter is added to in batches
    try:
        yield b"retry: %d\n\n" % retry_ms
        if after < truncated_through:
            yield b": truncated through %d\n\n" % truncated_through
        cursor = after
        caught_up = False
        while not caught_up and not draining.is_set():  # catch-up: by itself, to the head
            frames, count, page = await _read(spine, partition, cursor, stream, types, named, frame)
            if count:
                yield frames
                metrics.sse_events.inc(count)
            cursor, caught_up = page.next, page.next >= page.head
        with fanout.member(spine, partition, cursor) as member:
            while cursor < member.start and not draining.is_set():  # the shared reader is ahead
                frames, count, page = await _read(spine, partition, cursor, stream, types, named, frame)
                if count:
                    yield frames
                    metrics.sse_events.inc(count)
                cursor = max(cursor, page.next)
            selection = Selection(stream, types, named, frame)
            last_write = time.monotonic()
            while member.ended is None:
                frames, count, cursor = selection.pick(await member.take(), cursor)
                if count:
                    yield frames
                    last_write = time.monotonic()
                    unreported += count
                    if unreported >= _REPORT_EVERY:
                        metrics.sse_events.inc(unreported)
                        unreported = 0
                    continue
                if unreported:  # an idle moment: count what was sent
                    metrics.sse_events.inc(unreported)
                    unreported = 0
                if member.ended is None and time.monotonic() - last_write >= heartbeat_seconds:
                    yield HEARTBEAT
                    last_write = time.monotonic()
            if member.ended == "overflow":
                log.info("sse follower too slow: its stream ends", extra={"partition": partition.key})
    except SpineError as exc:
        # Headers are sent: the only honest answer left is to end the stream; the client resumes
        # with its Last-Event-ID.
        log.warning("sse follower ended", extra={"error_code": exc.error_code, "partition": partition.key})
    finally:
        if unreported:
            metrics.sse_events.inc(unreported)
        metrics.sse_clients.dec()


async def _read(
    spine: EventSpine,
    partition: Partition,
    cursor: int,
    stream: str | None,
    types: Collection[str],
    named: bool,
    frame: Framing | None,
) -> tuple[bytes, int, EncodedPage]:
    """A page of the log past `cursor`, read by this follower alone, filtered, with its frames."""
    page = await spine.read_encoded(partition, after=cursor, limit=PAGE_SIZE, stream=stream, types=types)
    frames = (frame(event) if frame else sse_frame(event, named=named) for event in page.events)
    return b"".join(frames), len(page.events), page

"""Live SSE followers of a partition share one reader per process.

A `PartitionReader` per (spine, partition) reads each new page of the log once, after each
notification (or `poll_seconds` without one), and offers it to every follower's `Member`, a
bounded queue of shared pages. A follower applies its own filters to what it takes
(`Selection`): a commit costs one read however many follow, and each event is framed once per
framing (named or not), not once per follower.

Joining is synchronous: the member is added at the reader's position `start`, and every page the
reader offers from then on holds exactly the events after `start`, in order. A follower that
caught up by itself (`app.http.follow`) reads (cursor, start] itself when it is behind and skips
what it already sent when it is ahead, so the handoff neither skips nor repeats an event.

The reader never waits for a follower. A member whose follower falls behind by more than
`buffer_events` events is ended: its follower ends its stream after what it has sent, and the
client resumes with Last-Event-ID. A reader ends with its last member; a read error ends every
member of its reader (their clients resume too), and so does the server's drain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Literal

import anyio
import anyio.abc
import msgspec

from app.http.metrics import Metrics
from domain.errors import SpineError
from domain.events import EncodedEvent
from domain.partition import Partition
from domain.ports import EventSpine, Notifier

log = logging.getLogger(f"spine.{__name__}")

PAGE_SIZE = 500
End = Literal["overflow", "error", "draining"]
Framing = Callable[[EncodedEvent], bytes]
"""A follower's own frame of an event (`b""`: none), when it sends something other than the
stored event (`/v1/flags/stream` sends each flag change evaluated for its follower)."""


def sse_frame(event: EncodedEvent, *, named: bool = True) -> bytes:
    """One event's frame. Unnamed (no `event:` line), a browser dispatches it as `message`, which a
    page's `onmessage` receives; the type is in the data either way (the stored Event's JSON)."""
    position, type_, body = event
    if not named:
        return b"id: %d\ndata: %s\n\n" % (position, body)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (position, type_.encode(), body)


class _Stream(msgspec.Struct):
    stream: str


_streams_of = msgspec.json.Decoder(list[_Stream])


class SharedPage:
    """Events a reader read once, with their frames, made once when a follower first asks."""

    __slots__ = ("_framed", "_streams", "_whole", "events", "next")

    def __init__(self, events: list[EncodedEvent], next_position: int) -> None:
        self.events = events
        self.next = next_position  # the reader's position after this page
        self._framed: dict[bool, list[bytes]] = {}
        self._whole: dict[bool, bytes] = {}
        self._streams: list[str] | None = None

    def framed(self, named: bool) -> list[bytes]:
        if named not in self._framed:
            self._framed[named] = [sse_frame(event, named=named) for event in self.events]
        return self._framed[named]

    def whole(self, named: bool) -> bytes:
        if named not in self._whole:
            self._whole[named] = b"".join(self.framed(named))
        return self._whole[named]

    def streams(self) -> list[str]:
        """Each event's stream, decoded from the stored JSON (the encoded page does not carry it)."""
        if self._streams is None:
            bodies = b",".join(body for _, _, body in self.events)
            self._streams = [found.stream for found in _streams_of.decode(b"[" + bodies + b"]")]
        return self._streams


class Selection:
    """A follower's filters and framing, applied to shared pages."""

    __slots__ = ("frame", "named", "stream", "types")

    def __init__(
        self, stream: str | None, types: Collection[str], named: bool, frame: Framing | None = None
    ) -> None:
        self.stream = stream
        self.types = frozenset(types)
        self.named = named
        self.frame = frame  # framed per follower, never shared

    def pick(self, pages: list[SharedPage], after: int) -> tuple[bytes, int, int]:
        """The frames of the pages' events past `after` that pass the filters, their count, and
        the cursor after the pages."""
        if len(pages) == 1:  # the common case, on every wake while the follower keeps up
            page = pages[0]
            if page.next <= after:
                return b"", 0, after
            frames, count = self._pick(page, after)
            return frames, count, page.next
        chunks: list[bytes] = []
        total = 0
        for page in pages:
            if page.next <= after:
                continue  # sent already, before this follower joined
            frames, count = self._pick(page, after)
            after = page.next
            if count:
                chunks.append(frames)
                total += count
        return b"".join(chunks), total, after

    def _pick(self, page: SharedPage, after: int) -> tuple[bytes, int]:
        events = page.events
        if self.frame is None and self.stream is None and not self.types and events[0][0] > after:
            return page.whole(self.named), len(events)  # shared bytes, no copy
        streams = page.streams() if self.stream is not None else None
        picked = [
            index
            for index, (position, type_, _) in enumerate(events)
            if position > after
            and (not self.types or type_ in self.types)
            and (streams is None or streams[index] == self.stream)
        ]
        if self.frame is not None:
            framed = [self.frame(events[index]) for index in picked]
        else:
            shared = page.framed(self.named)
            framed = [shared[index] for index in picked]
        return b"".join(framed), len(picked)


class Bell:
    """Wakes every member of a reader at once: one event per ring, however many wait on it."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def ring(self) -> None:
        event, self._event = self._event, anyio.Event()
        event.set()

    async def wait(self) -> None:
        await self._event.wait()


class Member:
    """One follower's place at its partition's reader: pages offered and not yet taken, bounded."""

    __slots__ = ("_bell", "_held", "_limit", "_pages", "ended", "start")

    def __init__(self, start: int, limit: int, bell: Bell) -> None:
        self.start = start  # the reader's position when this member joined
        self.ended: End | None = None
        self._pages: list[SharedPage] = []
        self._held = 0  # events in `_pages`
        self._limit = limit
        self._bell = bell

    def offer(self, page: SharedPage) -> bool:
        """Queue `page` (the reader rings once for all); False when that would hold more than the
        limit, and the member is ended."""
        self._held += len(page.events)
        if self._held > self._limit:
            self.end("overflow")
            return False
        self._pages.append(page)
        return True

    def end(self, reason: End) -> None:
        if self.ended is None:
            self.ended = reason
            self._pages, self._held = [], 0  # what was not taken is never sent: the client resumes
            self._bell.ring()

    async def take(self) -> list[SharedPage]:
        """The pages offered since the last take, after waiting for the next ring if there are none.
        A ring may bring nothing (a tick, every `tick_seconds`): the follower's cue for a heartbeat."""
        if not self._pages and self.ended is None:
            await self._bell.wait()
        pages, self._pages, self._held = self._pages, [], 0
        return pages


class PartitionReader:
    """Reads one partition's new pages once and offers them to its members."""

    def __init__(self, fanout: Fanout, spine: EventSpine, partition: Partition, position: int) -> None:
        self.spine = spine
        self.partition = partition
        self.position = position  # every event up to here has been offered
        self.members: set[Member] = set()
        self.bell = Bell()
        self.scope = anyio.CancelScope()
        self._fanout = fanout

    async def run(self, notifier: Notifier, poll_seconds: float, tick_seconds: float) -> None:
        with self.scope:
            try:
                # subscribed before the first read, so no announcement after it is missed
                async with notifier.subscribe(self.partition) as subscription:
                    rung = time.monotonic()
                    while True:
                        page = await self.spine.read_encoded(
                            self.partition, after=self.position, limit=PAGE_SIZE
                        )
                        if page.events:
                            self._offer(SharedPage(page.events, page.next))
                        self.position = page.next  # with the offer, before anything else runs
                        if page.events or time.monotonic() - rung >= tick_seconds:
                            self.bell.ring()
                            rung = time.monotonic()
                        if self.position < page.head:
                            continue
                        await subscription.wait(page.head, min(poll_seconds, tick_seconds))
            except SpineError as exc:
                log.warning(
                    "sse reader failed; its followers end",
                    extra={"error_code": exc.error_code, "partition": self.partition.key},
                )
                self.end_all("error")
            except Exception:
                # Not a reason to take down the task group and its other readers: log it, end
                # these followers (their clients resume) and let a new reader start.
                log.exception("sse reader failed; its followers end", extra={"partition": self.partition.key})
                self.end_all("error")
            finally:
                self._fanout.forget(self)

    def _offer(self, page: SharedPage) -> None:
        overflowed = [member for member in self.members if not member.offer(page)]
        for member in overflowed:
            self.members.discard(member)
            self._fanout.cut()

    def end_all(self, reason: End) -> None:
        for member in self.members:
            member.end(reason)
        self.members.clear()
        self.scope.cancel()


class Fanout:
    """The readers of this process, one per followed (spine, partition); see the module docstring."""

    def __init__(
        self,
        notifier: Notifier,
        metrics: Metrics,
        *,
        poll_seconds: float,
        heartbeat_seconds: float,
        buffer_events: int,
    ) -> None:
        self._notifier = notifier
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        # how often an idle reader rings, so each follower sends its heartbeat at most a quarter late
        self._tick_seconds = heartbeat_seconds / 4
        self._buffer_events = buffer_events
        self._readers: dict[tuple[EventSpine, str], PartitionReader] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._draining = False

    async def run(
        self, draining: anyio.Event, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Host the readers until the server drains: then every member ends, and no reader starts."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_status.started()
            try:
                await draining.wait()
            finally:  # drained, or cancelled with the app's background work: no reader outlives it
                self._draining = True
                for reader in list(self._readers.values()):
                    reader.end_all("draining")

    @contextmanager
    def member(self, spine: EventSpine, partition: Partition, cursor: int) -> Iterator[Member]:
        """A place at the partition's reader (started at `cursor` when there is none yet)."""
        if self._draining or self._task_group is None:
            ended = Member(cursor, self._buffer_events, Bell())
            ended.end("draining")
            yield ended
            return
        key = (spine, partition.key)
        reader = self._readers.get(key)
        if reader is None:
            reader = self._readers[key] = PartitionReader(self, spine, partition, cursor)
            self._metrics.sse_readers.inc()
            self._task_group.start_soon(reader.run, self._notifier, self._poll_seconds, self._tick_seconds)
        member = Member(reader.position, self._buffer_events, reader.bell)
        reader.members.add(member)
        try:
            yield member
        finally:
            reader.members.discard(member)
            if not reader.members:
                reader.scope.cancel()  # the last follower left: nothing to read for
                self.forget(reader)

    def cut(self) -> None:
        self._metrics.sse_cut.inc()

    def forget(self, reader: PartitionReader) -> None:
        key = (reader.spine, reader.partition.key)
        if self._readers.get(key) is reader:
            del self._readers[key]
            self._metrics.sse_readers.dec()

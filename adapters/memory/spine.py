"""In-memory spine for tests and explicit lab use. Same rules as every adapter, no durability."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime

from domain.append import AppendRequest, StoredId, client_ids, decide_append, validate
from domain.cursor import check_cursor
from domain.events import AppendResult, EncodedPage, Event, Page, event_encoder
from domain.partition import Partition
from domain.ports import Notifier


class MemorySpine:
    """Lists per partition. Appends never await between reading state and writing it, so the
    event loop itself makes them atomic; no lock is needed."""

    def __init__(self, notifier: Notifier | None = None) -> None:
        self._notifier = notifier
        self._logs: defaultdict[str, list[Event]] = defaultdict(list)
        self._streams: defaultdict[tuple[str, str], list[Event]] = defaultdict(list)
        self._ids: dict[tuple[str, str], StoredId] = {}
        self._removed: defaultdict[str, set[int]] = defaultdict(set)  # positions, per partition

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        validate(request)
        key = partition.key
        log = self._logs[key]
        stream_log = self._streams[(key, request.stream)]
        stored = [self._ids[(key, i)] for i in client_ids(request) if (key, i) in self._ids]
        events, result = decide_append(
            request,
            head=len(log),
            stream_version=len(stream_log),
            stored=stored,
            recorded_at=datetime.now(UTC),
        )
        for event in events:
            log.append(event)
            stream_log.append(event)
            self._ids[(key, event.id)] = StoredId(event.id, event.stream, event.version, event.position)
        if events and self._notifier is not None:
            await self._notifier.publish(partition, result.last_position)
        return result

    async def read(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> Page:
        log = self._logs.get(partition.key, [])
        head = len(log)
        check_cursor(after, head)
        wanted, removed = set(types), self._removed.get(partition.key, set())
        events: list[Event] = []
        # Positions are gapless from 1, so position p sits at index p - 1.
        for event in log[after:]:
            if event.position in removed:
                continue
            if (stream is None or event.stream == stream) and (not wanted or event.type in wanted):
                events.append(event)
                if len(events) == limit:
                    return Page(events=events, next=event.position, head=head)
        return Page(events=events, next=head, head=head)

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        page = await self.read(partition, after=after, limit=limit, stream=stream, types=types)
        events = [(e.position, e.type, event_encoder.encode(e)) for e in page.events]
        return EncodedPage(events=events, next=page.next, head=page.head)

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        stream_log = self._streams.get((partition.key, stream), [])
        removed = self._removed.get(partition.key, set())
        events = [event for event in stream_log[after_version:] if event.position not in removed]
        return events[:limit], len(stream_log)

    async def head(self, partition: Partition) -> int:
        return len(self._logs.get(partition.key, []))

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        log, removed = self._logs.get(partition.key, []), self._removed[partition.key]
        count = 0
        for position in set(positions):
            if 1 <= position <= len(log) and position not in removed:
                event = log[position - 1]
                if event.version < len(self._streams[(partition.key, event.stream)]):
                    removed.add(position)
                    count += 1
        return count

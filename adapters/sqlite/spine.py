"""SQLite spine: the embedded, durable default.

Layout: one row per event, clustered by (partition, position), with unique (partition, stream,
version) and (partition, id) indexes. WAL with `synchronous=FULL`, so an acknowledged append
survives power loss.

Group commit: appends queue up while a transaction is in flight; one writer thread drains the
queue into the next `BEGIN IMMEDIATE` transaction and acknowledges every caller only after COMMIT
returned. Each request keeps its own outcome: one conflicting request does not fail its batch.
`BEGIN IMMEDIATE` holds SQLite's write lock, so heads read inside it are exact even when several
processes share the file.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import anyio

from adapters.decoded_reads import DecodedReads
from adapters.group_commit import Announcements, Pending, settle
from adapters.sqlite.file import SQLiteFile, Synchronous
from domain.append import AppendRequest, StoredId, client_ids, decide_append, validate
from domain.cursor import check_cursor
from domain.errors import BackendUnavailable, SpineError
from domain.events import (
    AppendResult,
    EncodedEvent,
    EncodedPage,
    Event,
    decode_events,
    event_encoder,
)
from domain.partition import Partition
from domain.ports import Notifier

log = logging.getLogger(f"spine.{__name__}")

CommitObserver = Callable[[int, int, float], None]
"""Called after each group commit with (requests, events, seconds)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    pkey     TEXT    NOT NULL,
    position INTEGER NOT NULL,
    id       TEXT    NOT NULL,
    stream   TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    body     BLOB    NOT NULL,
    PRIMARY KEY (pkey, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_version ON events (pkey, stream, version);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (pkey, id);
"""
_INSERT = "INSERT INTO events (pkey, position, id, stream, version, type, body) VALUES "
_ROW = "(?, ?, ?, ?, ?, ?, ?)"
# One statement for many rows: sqlite3 releases the GIL around every statement step, and in a
# busy server taking it back costs up to a switch interval each time; executemany() would pay
# that once per row. 256 rows x 7 parameters stays far below SQLite's 32766-parameter limit.
_ROWS_PER_INSERT = 256
_MAX_EVENTS_PER_COMMIT = 20_000


_STOP = object()
_MAX_CACHED_STREAMS = 100_000


class _WriterCache:
    """Partition heads and stream versions as of our last commit, on the writer thread only.

    `PRAGMA data_version` changes when another connection commits to the file; then nothing
    cached can be trusted and it is dropped.
    """

    def __init__(self) -> None:
        self.heads: dict[str, int] = {}
        self.versions: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._data_version: int | None = None

    def check(self, connection: sqlite3.Connection) -> None:
        data_version = connection.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self._data_version:
            self.clear()
            self._data_version = data_version

    def update(self, heads: dict[str, int], versions: dict[tuple[str, str], int]) -> None:
        self.heads.update(heads)
        self.versions.update(versions)
        for key in versions:
            self.versions.move_to_end(key)
        while len(self.versions) > _MAX_CACHED_STREAMS:
            self.versions.popitem(last=False)

    def clear(self) -> None:
        self.heads.clear()
        self.versions.clear()
        self._data_version = None


class SQLiteSpine(DecodedReads):
    """`async with SQLiteSpine(path) as spine:` starts the writer thread; leaving it drains and closes."""

    def __init__(
        self,
        path: str | Path,
        *,
        notifier: Notifier | None = None,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 5000,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self.path = Path(path)
        self._notifier = notifier
        self._on_commit = on_commit
        self._inbox: queue.SimpleQueue[Pending | object] = queue.SimpleQueue()
        self._file = SQLiteFile(self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        self._writer: sqlite3.Connection | None = None
        self._writer_thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._announcements = Announcements()
        self._cache = _WriterCache()

    # lifecycle

    async def __aenter__(self) -> SQLiteSpine:
        with _translate_errors():
            self._writer = await anyio.to_thread.run_sync(self._file.open_writer, _SCHEMA)
        self._loop = asyncio.get_running_loop()
        self._writer_thread = threading.Thread(target=self._write_loop, name=f"spine-writer:{self.path.name}")
        self._writer_thread.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._writer_thread is not None:
            self._inbox.put(_STOP)
            await anyio.to_thread.run_sync(self._writer_thread.join)
            self._writer_thread = None
        await self._announcements.drain()
        self._file.close()

    # appends

    async def append(self, partition: Partition, request: AppendRequest) -> AppendResult:
        validate(request)
        if self._loop is None or self._writer_thread is None:
            raise BackendUnavailable("event_spine", "the event spine is not started")
        pending = Pending(partition, request, self._loop.create_future())
        self._inbox.put(pending)
        # If the caller is cancelled the append may still commit; a retry with the same ids is safe.
        return await pending.future

    def _write_loop(self) -> None:
        """The writer thread: everything queued during one commit goes into the next."""
        assert self._loop is not None
        while True:
            first = self._inbox.get()
            if first is _STOP:
                return
            assert isinstance(first, Pending)
            batch, stop = self._drain(first)
            started = time.perf_counter()
            outcomes: list[AppendResult | SpineError]
            try:
                with _translate_errors():
                    outcomes = self._commit(batch)
            except BackendUnavailable as exc:
                outcomes = [exc] * len(batch)
            elapsed = time.perf_counter() - started
            self._loop.call_soon_threadsafe(self._resolve, batch, outcomes, elapsed)
            if stop:
                return

    def _drain(self, first: Pending) -> tuple[list[Pending], bool]:
        batch, events = [first], len(first.request.events)
        while events < _MAX_EVENTS_PER_COMMIT:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            assert isinstance(item, Pending)
            batch.append(item)
            events += len(item.request.events)
        return batch, False

    def _resolve(
        self, batch: list[Pending], outcomes: list[AppendResult | SpineError], elapsed: float
    ) -> None:
        """On the event loop: hand each caller its outcome, then announce each partition's new head."""
        heads, events = settle(batch, outcomes)
        if self._on_commit is not None:
            self._on_commit(len(batch), events, elapsed)
        self._announcements.publish(self._notifier, heads)

    def _commit(self, batch: list[Pending]) -> list[AppendResult | SpineError]:
        """One transaction for the whole batch, on the writer thread."""
        connection = self._writer
        assert connection is not None
        recorded_at = datetime.now(UTC)
        written_ids: dict[tuple[str, str], StoredId] = {}
        rows: list[tuple[str, int, str, str, int, str, bytes]] = []
        outcomes: list[AppendResult | SpineError] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            heads, versions = self._state_for(connection, batch)
            for pending in batch:
                key, request = pending.partition.key, pending.request
                try:
                    events, result = decide_append(
                        request,
                        head=heads[key],
                        stream_version=versions[(key, request.stream)],
                        stored=_stored_ids(connection, key, client_ids(request), written_ids),
                        recorded_at=recorded_at,
                    )
                except SpineError as exc:
                    outcomes.append(exc)
                    continue
                for event in events:
                    body = event_encoder.encode(event)
                    rows.append(
                        (key, event.position, event.id, event.stream, event.version, event.type, body)
                    )
                    written_ids[(key, event.id)] = StoredId(
                        event.id, event.stream, event.version, event.position
                    )
                if events:
                    heads[key] = result.last_position
                    versions[(key, request.stream)] = result.stream_version
                outcomes.append(result)
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                params = [value for row in chunk for value in row]
                connection.execute(_INSERT + ", ".join([_ROW] * len(chunk)), params)
            connection.execute("COMMIT")
        except BaseException:
            self._cache.clear()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._cache.update(heads, versions)
        return outcomes

    def _state_for(
        self, connection: sqlite3.Connection, batch: list[Pending]
    ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Heads and stream versions the batch needs, from the cache where it is still true."""
        self._cache.check(connection)
        heads: dict[str, int] = {}
        versions: dict[tuple[str, str], int] = {}
        missing: dict[str, set[str]] = {}
        for pending in batch:
            key, stream = pending.partition.key, pending.request.stream
            if key not in heads:
                cached = self._cache.heads.get(key)
                heads[key] = (
                    cached
                    if cached is not None
                    else _scalar(connection, "SELECT MAX(position) FROM events WHERE pkey = ?", key)
                )
            if (key, stream) not in versions:
                cached = self._cache.versions.get((key, stream))
                if cached is None:
                    missing.setdefault(key, set()).add(stream)
                else:
                    versions[(key, stream)] = cached
        for key, streams in missing.items():
            found = dict.fromkeys(streams, 0)
            placeholders = ", ".join("?" * len(streams))
            found.update(
                connection.execute(
                    f"SELECT stream, MAX(version) FROM events WHERE pkey = ? AND stream IN ({placeholders})"  # noqa: S608
                    " GROUP BY stream",
                    (key, *streams),
                ).fetchall()
            )
            versions.update({(key, stream): version for stream, version in found.items()})
        return heads, versions

    # reads

    async def read_encoded(
        self,
        partition: Partition,
        *,
        after: int = 0,
        limit: int = 100,
        stream: str | None = None,
        types: Collection[str] = (),
    ) -> EncodedPage:
        with _translate_errors():
            return await anyio.to_thread.run_sync(
                self._read_encoded, partition.key, after, limit, stream, tuple(types)
            )

    def _read_encoded(
        self, key: str, after: int, limit: int, stream: str | None, types: tuple[str, ...]
    ) -> EncodedPage:
        sql = "SELECT position, type, body FROM events WHERE pkey = ? AND position > ?"
        params: list[object] = [key, after]
        if stream is not None:
            sql += " AND stream = ?"
            params.append(stream)
        if types:
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            params.extend(types)
        sql += " ORDER BY position LIMIT ?"
        params.append(limit)
        with self._file.reader() as connection:
            connection.execute("BEGIN")  # one snapshot for the head and the page
            head = _scalar(connection, "SELECT MAX(position) FROM events WHERE pkey = ?", key)
            check_cursor(after, head)
            rows: list[EncodedEvent] = connection.execute(sql, params).fetchall()
        next_position = rows[-1][0] if len(rows) == limit else head
        return EncodedPage(events=rows, next=next_position, head=head)

    async def read_stream(
        self, partition: Partition, stream: str, *, after_version: int = 0, limit: int = 1000
    ) -> tuple[list[Event], int]:
        with _translate_errors():
            return await anyio.to_thread.run_sync(
                self._read_stream, partition.key, stream, after_version, limit
            )

    def _read_stream(self, key: str, stream: str, after_version: int, limit: int) -> tuple[list[Event], int]:
        with self._file.reader() as connection:
            connection.execute("BEGIN")
            version = _scalar(
                connection, "SELECT MAX(version) FROM events WHERE pkey = ? AND stream = ?", key, stream
            )
            rows = connection.execute(
                "SELECT body FROM events WHERE pkey = ? AND stream = ? AND version > ? ORDER BY version LIMIT ?",
                (key, stream, after_version, limit),
            ).fetchall()
        return _decode(rows), version

    async def head(self, partition: Partition) -> int:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._head, partition.key)

    def _head(self, key: str) -> int:
        with self._file.reader() as connection:
            return _scalar(connection, "SELECT MAX(position) FROM events WHERE pkey = ?", key)


def _scalar(connection: sqlite3.Connection, sql: str, *params: object) -> int:
    row = connection.execute(sql, params).fetchone()
    return int(row[0] or 0)


def _stored_ids(
    connection: sqlite3.Connection, key: str, ids: list[str], written: dict[tuple[str, str], StoredId]
) -> list[StoredId]:
    if not ids:
        return []
    found = [written[(key, i)] for i in ids if (key, i) in written]
    placeholders = ", ".join("?" * len(ids))
    rows = connection.execute(
        f"SELECT id, stream, version, position FROM events WHERE pkey = ? AND id IN ({placeholders})",  # noqa: S608
        (key, *ids),
    ).fetchall()
    return found + [StoredId(*row) for row in rows]


def _decode(rows: list[tuple[bytes]]) -> list[Event]:
    return decode_events(row[0] for row in rows)


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        # No traceback: the cause is the store's (a lock, a disk, a path), named in the message.
        log.error("sqlite spine error", extra={"error": type(exc).__name__, "detail": str(exc)})  # noqa: TRY400
        raise BackendUnavailable(
            "event_spine", f"the event spine store is unavailable ({type(exc).__name__})"
        ) from exc

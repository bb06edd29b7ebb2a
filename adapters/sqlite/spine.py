"""SQLite spine: the embedded, durable default.

Layout: one row per event, clustered by (partition, position), with unique (partition, stream,
version) and (partition, id) indexes. WAL with `synchronous=FULL`, so an acknowledged append
survives power loss.

Group commit: appends queue up while a transaction is in flight; one writer thread drains the
queue into the next transaction (adapters/sqlite/commit.py) and acknowledges every caller only
after it committed. Each request keeps its own outcome: one conflicting request does not fail its
batch. Heads are exact even when several processes share the file: the group's insert only
happens when no other connection committed since the heads were read, or under `BEGIN IMMEDIATE`.

A lone appender pays for no grouping: its append is queued, the writer (blocked on the queue)
takes it at once and commits it alone. That is two thread hand-offs, the least there can be with
the fsync kept off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import TracebackType

import anyio

from adapters.decoded_reads import DecodedReads
from adapters.group_commit import Announcements, Outcome, Pending, settle
from adapters.sqlite.commit import GroupCommitter
from adapters.sqlite.file import SQLiteFile, Synchronous
from domain.append import AppendRequest, validate
from domain.cursor import check_cursor
from domain.errors import BackendUnavailable
from domain.events import AppendResult, EncodedEvent, EncodedPage, Event, decode_events
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
_MAX_EVENTS_PER_COMMIT = 20_000


_STOP = object()


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
        self._committer: GroupCommitter | None = None

    # lifecycle

    async def __aenter__(self) -> SQLiteSpine:
        with _translate_errors():
            self._writer = await anyio.to_thread.run_sync(self._file.open_writer, _SCHEMA)
        self._loop = asyncio.get_running_loop()
        self._committer = GroupCommitter(self._writer)
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
        assert self._committer is not None
        while True:
            first = self._inbox.get()
            if first is _STOP:
                return
            assert isinstance(first, Pending)
            batch, stop = self._drain(first)
            started = time.perf_counter()
            outcomes: list[Outcome]
            try:
                outcomes = self._committer.commit(batch)
            except sqlite3.Error as exc:
                outcomes = [_unavailable(exc)] * len(batch)
            except Exception as exc:  # a bug of ours: its callers get an answer, the thread goes on
                log.exception("sqlite spine commit failed")
                failed = BackendUnavailable(
                    "event_spine", f"the append could not be committed ({type(exc).__name__})"
                )
                outcomes = [failed] * len(batch)
            elapsed = time.perf_counter() - started
            self._loop.call_soon_threadsafe(self._resolve, batch, outcomes, elapsed)
            if stop:
                return

    def _drain(self, first: Pending) -> tuple[list[Pending], bool]:
        batch, events, inbox = [first], len(first.request.events), self._inbox
        # only this thread takes from the inbox: when it is not empty, get_nowait has an item
        while events < _MAX_EVENTS_PER_COMMIT and not inbox.empty():
            item = inbox.get_nowait()
            if item is _STOP:
                return batch, True
            assert isinstance(item, Pending)
            batch.append(item)
            events += len(item.request.events)
        return batch, False

    def _resolve(self, batch: list[Pending], outcomes: list[Outcome], elapsed: float) -> None:
        """On the event loop: hand each caller its outcome, then announce each partition's new head."""
        heads, events = settle(batch, outcomes)
        if self._on_commit is not None:
            self._on_commit(len(batch), events, elapsed)
        self._announcements.publish(self._notifier, heads)

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

    async def remove(self, partition: Partition, positions: Collection[int]) -> int:
        wanted = sorted(set(positions))
        if not wanted:
            return 0
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._remove, partition.key, wanted)

    def _remove(self, key: str, positions: list[int]) -> int:
        removed = 0
        with self._file.writer() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(positions), _MAX_REMOVED_PER_STATEMENT):
                    chunk = positions[start : start + _MAX_REMOVED_PER_STATEMENT]
                    removed += connection.execute(_remove_sql(len(chunk)), [key, *chunk]).rowcount
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return removed


_MAX_REMOVED_PER_STATEMENT = 500


@cache
def _remove_sql(count: int) -> str:
    # A stream's last event stays: its version is the stream's (`EventSpine.remove`).
    return (
        "DELETE FROM events WHERE pkey = ?1 AND position IN ("  # noqa: S608
        + ", ".join(f"?{i + 2}" for i in range(count))
        + ") AND version < (SELECT MAX(version) FROM events AS last"
        " WHERE last.pkey = ?1 AND last.stream = events.stream)"
    )


def _scalar(connection: sqlite3.Connection, sql: str, *params: object) -> int:
    row = connection.execute(sql, params).fetchone()
    return int(row[0] or 0)


def _decode(rows: list[tuple[bytes]]) -> list[Event]:
    return decode_events(row[0] for row in rows)


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: sqlite3.Error) -> BackendUnavailable:
    # No traceback: the cause is the store's (a lock, a disk, a path), named in the message.
    log.error("sqlite spine error", extra={"error": type(exc).__name__, "detail": str(exc)})
    unavailable = BackendUnavailable(
        "event_spine", f"the event spine store is unavailable ({type(exc).__name__})"
    )
    unavailable.__cause__ = exc
    return unavailable

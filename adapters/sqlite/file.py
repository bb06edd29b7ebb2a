"""One SQLite database file as Spine's adapters use it: a writer in WAL, a pool of read-only readers."""

from __future__ import annotations

import queue
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

Synchronous = Literal["FULL", "NORMAL", "OFF", "EXTRA"]


class SQLiteFile:
    """Connections usable from worker threads (each used by one thread at a time), closed together."""

    def __init__(self, path: Path, *, synchronous: Synchronous, busy_timeout_ms: int) -> None:
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._connections: list[sqlite3.Connection] = []

    def open_writer(self, schema: str) -> sqlite3.Connection:
        """The writing connection, in WAL with the chosen durability; creates `schema` if missing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connect()
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        connection.executescript(schema)
        return connection

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection from the pool; an open read transaction is ended on return."""
        try:
            connection = self._readers.get_nowait()
        except queue.Empty:
            connection = self._connect()
            connection.execute("PRAGMA query_only = 1")
        try:
            yield connection
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            self._readers.put(connection)

    @contextmanager
    def writer(self) -> Iterator[sqlite3.Connection]:
        """A writing connection of its own, for work outside the writer thread's commits (removals):
        SQLite's write lock orders the two, and `PRAGMA data_version` tells the writer thread."""
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
            yield connection
        finally:
            connection.close()

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
        self._connections.clear()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        self._connections.append(connection)
        return connection

"""SQLite view store: documents keyed (space, collection, key), checkpoints and leases beside them.

One transaction per `apply`: its ops and the checkpoint commit together or not at all. The rule
"an op whose event is not newer is skipped" is the upsert's own WHERE clause, so it holds however
often a batch is delivered.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import msgspec

from adapters.sqlite.file import SQLiteFile, Synchronous
from domain.errors import BackendUnavailable
from domain.views import Delete, Generations, ViewDoc, ViewOp

_SCHEMA = """
CREATE TABLE IF NOT EXISTS view_documents (
    space      TEXT    NOT NULL,
    collection TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    data       BLOB,               -- NULL: a tombstone
    PRIMARY KEY (space, collection, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_spaces (
    space       TEXT    PRIMARY KEY,
    checkpoint  INTEGER NOT NULL DEFAULT 0,
    holder      TEXT,
    lease_until REAL    NOT NULL DEFAULT 0   -- unix time: leases are shared between processes
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_generations (
    pkey       TEXT    NOT NULL,
    projection TEXT    NOT NULL,
    serving    INTEGER NOT NULL,
    building   INTEGER,
    PRIMARY KEY (pkey, projection)
) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO view_documents (space, collection, key, position, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (space, collection, key) DO UPDATE SET position = excluded.position, data = excluded.data
WHERE excluded.position > view_documents.position
"""
_CHECKPOINT = """
INSERT INTO view_spaces (space, checkpoint) VALUES (?, ?)
ON CONFLICT (space) DO UPDATE SET checkpoint = MAX(checkpoint, excluded.checkpoint)
"""
_LEASE = """
INSERT INTO view_spaces (space, holder, lease_until) VALUES (?1, ?2, ?3 + ?4)
ON CONFLICT (space) DO UPDATE SET holder = ?2, lease_until = ?3 + ?4
WHERE holder IS NULL OR holder = ?2 OR lease_until < ?3
"""
_GENERATIONS = """
INSERT INTO view_generations (pkey, projection, serving, building) VALUES (?, ?, ?, ?)
ON CONFLICT (pkey, projection) DO UPDATE SET serving = excluded.serving, building = excluded.building
"""
_DROP_BATCH = 5000  # rows per transaction: dropping a large generation never stalls writers for long
# The writer's tuning for batches of upserts into large, growing views (a rebuild): a page cache of
# 64 MiB, grown only as used, keeps the B-tree pages of the keys being written; a checkpoint every
# 10,000 WAL pages (40 MiB, not SQLite's 1000) copies a page updated by many batches once. Measured
# on 1M-event rebuilds (bench/bench_projections.py): memory +20%, audit +60%; the longest commit
# of an audit rebuild's 500-event batches (a commit runs the checkpoint) grew from 17 to 41 ms.
_WRITER_PRAGMAS = ("PRAGMA cache_size = -65536", "PRAGMA wal_autocheckpoint = 10000")
_Row = tuple[str, str, str, int, bytes | None]
# named here: inside the classes, `list` is the method of that name
_Rows = list[_Row]
_Docs = list[ViewDoc]
_Known = list[tuple[str, str]]
_encoder = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict)


class SQLiteViewStore:
    """`async with SQLiteViewStore(path) as views:`; writes are serialized, reads run beside them."""

    max_apply_size: int | None = None  # one SQLite transaction takes any apply

    def __init__(
        self, path: str | Path, *, synchronous: Synchronous = "FULL", busy_timeout_ms: int = 5000
    ) -> None:
        self.path = Path(path)
        self._file = SQLiteFile(self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()

    async def __aenter__(self) -> SQLiteViewStore:
        with _translate_errors():
            self._writer = await anyio.to_thread.run_sync(self._open_writer)
        return self

    def _open_writer(self) -> sqlite3.Connection:
        connection = self._file.open_writer(_SCHEMA)
        for pragma in _WRITER_PRAGMAS:
            connection.execute(pragma)
        return connection

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._get, space, collection, key)

    def _get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        with self._file.reader() as connection:
            row = connection.execute(
                "SELECT position, data FROM view_documents WHERE space = ? AND collection = ? AND key = ?",
                (space, collection, key),
            ).fetchone()
        if row is None or row[1] is None:
            return None
        return ViewDoc(collection=collection, key=key, position=row[0], data=_data_decoder.decode(row[1]))

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._list, space, collection, prefix, after, limit)

    def _list(self, space: str, collection: str, prefix: str, after: str, limit: int) -> _Docs:
        # A range on the primary key: keys >= prefix and > after, stopped at the first one past the prefix.
        with self._file.reader() as connection:
            rows = connection.execute(
                "SELECT key, position, data FROM view_documents WHERE space = ? AND collection = ?"
                " AND key >= ? AND key > ? AND data IS NOT NULL ORDER BY key",
                (space, collection, prefix, after),
            )
            docs: _Docs = []
            for key, position, data in rows:
                if not key.startswith(prefix) or len(docs) == limit:
                    break
                docs.append(
                    ViewDoc(
                        collection=collection, key=key, position=position, data=_data_decoder.decode(data)
                    )
                )
        return docs

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        rows = [
            (space, op.collection, op.key, op.position, None if isinstance(op, Delete) else _encoder.encode(op.data))
            for op in ops
        ]  # fmt: skip
        with _translate_errors():
            await anyio.to_thread.run_sync(self._apply, space, rows, checkpoint)

    def _apply(self, space: str, rows: _Rows, checkpoint: int) -> None:
        with self._transaction() as connection:
            connection.executemany(_UPSERT, rows)
            connection.execute(_CHECKPOINT, (space, checkpoint))

    def op_size(self, op: ViewOp) -> int:
        return 1

    async def checkpoint(self, space: str) -> int:
        with _translate_errors():
            row = await anyio.to_thread.run_sync(
                self._one, "SELECT checkpoint FROM view_spaces WHERE space = ?", (space,)
            )
        return int(row[0]) if row else 0

    async def drop(self, space: str) -> None:
        with _translate_errors():
            await anyio.to_thread.run_sync(self._drop, space)

    def _drop(self, space: str) -> None:
        while True:
            with self._transaction() as connection:
                deleted = connection.execute(
                    "DELETE FROM view_documents WHERE (space, collection, key) IN (SELECT space, collection,"
                    " key FROM view_documents WHERE space = ? LIMIT ?)",
                    (space, _DROP_BATCH),
                ).rowcount
                if deleted < _DROP_BATCH:
                    connection.execute("DELETE FROM view_spaces WHERE space = ?", (space,))
                    return

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._lease, space, holder, seconds)

    def _lease(self, space: str, holder: str, seconds: float) -> bool:
        with self._transaction() as connection:
            return connection.execute(_LEASE, (space, holder, time.time(), seconds)).rowcount == 1

    async def generations(self, partition_key: str, projection: str) -> Generations:
        with _translate_errors():
            row = await anyio.to_thread.run_sync(
                self._one,
                "SELECT serving, building FROM view_generations WHERE pkey = ? AND projection = ?",
                (partition_key, projection),
            )
        return Generations() if row is None else Generations(serving=row[0], building=row[1])

    async def set_generations(self, partition_key: str, projection: str, generations: Generations) -> None:
        values = (partition_key, projection, generations.serving, generations.building)
        with _translate_errors():
            await anyio.to_thread.run_sync(self._write, _GENERATIONS, values)

    async def known(self) -> _Known:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._known)

    def _known(self) -> _Known:
        with self._file.reader() as connection:
            rows = connection.execute("SELECT pkey, projection FROM view_generations ORDER BY 1, 2")
            return [(str(pkey), str(projection)) for pkey, projection in rows]

    def _one(self, sql: str, values: tuple[object, ...]) -> tuple[Any, ...] | None:
        with self._file.reader() as connection:
            row: tuple[Any, ...] | None = connection.execute(sql, values).fetchone()
            return row

    def _write(self, sql: str, values: tuple[object, ...]) -> None:
        with self._transaction() as connection:
            connection.execute(sql, values)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._writer
        assert connection is not None
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendUnavailable(
            "view_store", f"the view store is unavailable ({type(exc).__name__})"
        ) from exc

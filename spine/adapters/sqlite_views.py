"""SQLite view store: documents keyed (partition, collection, key), checkpoints beside them.

One transaction per `apply`: its ops and the checkpoint commit together or not at all. The rule
"an op whose event is not newer is skipped" is the upsert's own WHERE clause, so it holds however
often a batch is delivered.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import anyio
import msgspec

from spine.adapters.sqlite_file import SQLiteFile, Synchronous
from spine.domain.errors import BackendUnavailable
from spine.domain.partition import Partition
from spine.domain.views import Delete, ViewDoc, ViewOp

_SCHEMA = """
CREATE TABLE IF NOT EXISTS view_docs (
    pkey       TEXT    NOT NULL,
    collection TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    data       BLOB,               -- NULL: a tombstone
    PRIMARY KEY (pkey, collection, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_checkpoints (
    pkey       TEXT    NOT NULL,
    projection TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (pkey, projection)
) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO view_docs (pkey, collection, key, position, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (pkey, collection, key) DO UPDATE SET position = excluded.position, data = excluded.data
WHERE excluded.position > view_docs.position
"""
_CHECKPOINT = """
INSERT INTO view_checkpoints (pkey, projection, position) VALUES (?, ?, ?)
ON CONFLICT (pkey, projection) DO UPDATE SET position = MAX(position, excluded.position)
"""
_Row = tuple[str, str, str, int, bytes | None]
# named here: inside the classes, `list` is the method of that name
_Rows = list[_Row]
_Docs = list[ViewDoc]
_encoder = msgspec.json.Encoder()
_data_decoder = msgspec.json.Decoder(dict)


class SQLiteViewStore:
    """`async with SQLiteViewStore(path) as views:`; writes are serialized, reads run beside them."""

    def __init__(
        self, path: str | Path, *, synchronous: Synchronous = "FULL", busy_timeout_ms: int = 5000
    ) -> None:
        self.path = Path(path)
        self._file = SQLiteFile(self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        self._writer: sqlite3.Connection | None = None
        self._write_lock = threading.Lock()

    async def __aenter__(self) -> SQLiteViewStore:
        with _translate_errors():
            self._writer = await anyio.to_thread.run_sync(self._file.open_writer, _SCHEMA)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()

    async def get(self, partition: Partition, collection: str, key: str) -> ViewDoc | None:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._get, partition.key, collection, key)

    def _get(self, pkey: str, collection: str, key: str) -> ViewDoc | None:
        with self._file.reader() as connection:
            row = connection.execute(
                "SELECT position, data FROM view_docs WHERE pkey = ? AND collection = ? AND key = ?",
                (pkey, collection, key),
            ).fetchone()
        if row is None or row[1] is None:
            return None
        return ViewDoc(collection=collection, key=key, position=row[0], data=_data_decoder.decode(row[1]))

    async def list(
        self, partition: Partition, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._list, partition.key, collection, prefix, after, limit)

    def _list(self, pkey: str, collection: str, prefix: str, after: str, limit: int) -> _Docs:
        # A range on the primary key: keys >= prefix and > after, stopped at the first one past the prefix.
        with self._file.reader() as connection:
            rows = connection.execute(
                "SELECT key, position, data FROM view_docs WHERE pkey = ? AND collection = ? AND key >= ?"
                " AND key > ? AND data IS NOT NULL ORDER BY key",
                (pkey, collection, prefix, after),
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

    async def apply(
        self, partition: Partition, projection: str, ops: Sequence[ViewOp], checkpoint: int
    ) -> None:
        rows = [
            (
                partition.key,
                op.collection,
                op.key,
                op.position,
                None if isinstance(op, Delete) else _encoder.encode(op.data),
            )
            for op in ops
        ]
        with _translate_errors():
            await anyio.to_thread.run_sync(self._apply, partition.key, projection, rows, checkpoint)

    def _apply(self, pkey: str, projection: str, rows: _Rows, checkpoint: int) -> None:
        connection = self._writer
        assert connection is not None
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(_UPSERT, rows)
                connection.execute(_CHECKPOINT, (pkey, projection, checkpoint))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    async def checkpoint(self, partition: Partition, projection: str) -> int:
        with _translate_errors():
            return await anyio.to_thread.run_sync(self._checkpoint, partition.key, projection)

    def _checkpoint(self, pkey: str, projection: str) -> int:
        with self._file.reader() as connection:
            row = connection.execute(
                "SELECT position FROM view_checkpoints WHERE pkey = ? AND projection = ?", (pkey, projection)
            ).fetchone()
        return int(row[0]) if row else 0


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendUnavailable(
            "view_store", f"the view store is unavailable ({type(exc).__name__})"
        ) from exc

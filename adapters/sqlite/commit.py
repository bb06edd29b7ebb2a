"""One group commit of the SQLite spine, on its writer thread.

Fast path: the heads and stream versions come from what this connection last committed (streams
it has not seen are read now, outside a transaction), and the whole group is inserted by one
`INSERT … SELECT` that only inserts when `PRAGMA data_version` has the value it had when that
state was read: no other connection committed since. In autocommit mode that one statement is
the whole transaction (lock, check, insert, fsync): one call into SQLite per group, so the writer
gives up and takes back the GIL a few times per commit instead of once per statement and row.
A group too large for one statement is inserted by several in one `BEGIN IMMEDIATE` transaction,
after the same check made under the lock.

Locked path: when another connection did commit, when a request is refused (a refusal decided on
state read outside the lock could be stale) or when nothing is known yet, the group is decided
again inside `BEGIN IMMEDIATE`, from state read under SQLite's write lock, which holds even when
several processes share the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from itertools import islice
from typing import Any

from adapters.group_commit import Outcome, Pending
from domain.append import StoredId, client_ids, decide_append
from domain.errors import SpineError
from domain.events import event_encoder
from domain.ids import new_event_id, new_event_ids

_COLUMNS = "pkey, position, id, stream, version, type, body"
_WIDTH = 7  # columns per row
# Statements take a power-of-two number of rows, padded with NULL rows that the insert skips: a
# handful of prepared statements serve every group size. 256 rows x 7 parameters stays far below
# SQLite's 32766-parameter limit.
_MAX_ROWS_PER_STATEMENT = 256
_MAX_IN_LIST = 512
_PADDING: tuple[None, ...] = (None,) * (_WIDTH * _MAX_ROWS_PER_STATEMENT)
_MAX_CACHED_STREAMS = 100_000


def _size_class(count: int) -> int:
    return 1 << (count - 1).bit_length()


@cache
def _insert_sql(rows: int, *, guarded: bool) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)
    sql = f"INSERT INTO events ({_COLUMNS}) SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL"  # noqa: S608
    if guarded:
        sql += " AND (SELECT data_version FROM pragma_data_version) = ?"
    return sql


@cache
def _in_list(size: int) -> str:
    return ", ".join("?" * size)


class _Group:
    """What a batch decided: each request's outcome, the rows to insert, the state they leave."""

    __slots__ = ("heads", "outcomes", "params", "refused", "rows", "versions")

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.params: list[object] = []  # the rows, flattened into statement parameters
        self.rows = 0
        self.refused = False
        self.heads: dict[str, int] = {}
        self.versions: dict[tuple[str, str], int] = {}


class GroupCommitter:
    """The writer connection and what it knows: partition heads and stream versions as of its
    last commit, true while `PRAGMA data_version` keeps the value it had then."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._heads: dict[str, int] = {}
        self._versions: dict[tuple[str, str], int] = {}
        self._data_version: int | None = None  # None: nothing cached

    def commit(self, batch: Sequence[Pending]) -> list[Outcome]:
        """Write the batch in one transaction; every request keeps its own outcome."""
        recorded_at = datetime.now(UTC)
        try:
            if self._data_version is not None:
                group = self._decide(batch, recorded_at)
                if not group.refused and self._insert_if_unchanged(group):
                    self._remember(group)
                    return group.outcomes
            return self._commit_locked(batch, recorded_at)
        except BaseException:
            self._forget()
            raise

    # the two paths

    def _insert_if_unchanged(self, group: _Group) -> bool:
        """Insert the group unless another connection committed since the cached state was true."""
        if group.rows == 0:
            return True  # every request answered by ids already stored: ids are never rewritten
        if group.rows <= _MAX_ROWS_PER_STATEMENT:
            size = _size_class(group.rows)
            params = group.params
            params.extend(_PADDING[: (size - group.rows) * _WIDTH])
            params.append(self._data_version)
            inserted = self._connection.execute(_insert_sql(size, guarded=True), params).rowcount
            return inserted == group.rows
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            if self._read_data_version() != self._data_version:
                connection.execute("ROLLBACK")
                return False
            self._insert(group)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return True

    def _commit_locked(self, batch: Sequence[Pending], recorded_at: datetime) -> list[Outcome]:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            data_version = self._read_data_version()
            if data_version != self._data_version:
                self._forget()
            group = self._decide(batch, recorded_at)
            self._insert(group)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        self._data_version = data_version
        self._remember(group)
        return group.outcomes

    def _insert(self, group: _Group) -> None:
        """The group's rows, inside the caller's transaction."""
        step = _MAX_ROWS_PER_STATEMENT * _WIDTH
        for start in range(0, group.rows * _WIDTH, step):
            chunk = group.params[start : start + step]
            rows = len(chunk) // _WIDTH
            size = _size_class(rows)
            chunk.extend(_PADDING[: (size - rows) * _WIDTH])
            self._connection.execute(_insert_sql(size, guarded=False), chunk)

    # deciding

    def _decide(self, batch: Sequence[Pending], recorded_at: datetime) -> _Group:
        """Each request decided in queue order, against the state the earlier ones leave."""
        group = _Group()
        keys = [pending.partition.key for pending in batch]
        heads, versions = self._state_for(batch, keys, group)
        stored = self._stored_ids(batch, keys)
        # ids this group writes, for a later request of the same group that repeats them: only a
        # client can repeat an id, so a group without client ids keeps none
        written: dict[tuple[str, str], StoredId] = {}
        params, outcomes, encode = group.params, group.outcomes, event_encoder.encode
        # ids for the whole group at once, when it needs more than one
        unnamed = sum(1 for pending in batch for new in pending.request.events if new.id is None)
        new_id = iter(new_event_ids(unnamed)).__next__ if unnamed > 1 else new_event_id
        for key, pending in zip(keys, batch, strict=True):
            request = pending.request
            stream_key = (key, request.stream)
            found: list[StoredId] = []
            if stored is not None:
                for event_id in client_ids(request):
                    hit = written.get((key, event_id)) or stored.get((key, event_id))
                    if hit is not None:
                        found.append(hit)
            try:
                events, result = decide_append(
                    request,
                    head=heads[key],
                    stream_version=versions[stream_key],
                    stored=found,
                    recorded_at=recorded_at,
                    new_id=new_id,
                )
            except SpineError as exc:
                outcomes.append(exc)
                group.refused = True
                continue
            for event in events:
                params += (
                    key,
                    event.position,
                    event.id,
                    event.stream,
                    event.version,
                    event.type,
                    encode(event),
                )
                if stored is not None:
                    written[(key, event.id)] = StoredId(event.id, event.stream, event.version, event.position)
            if events:
                group.rows += len(events)
                heads[key] = result.last_position
                versions[stream_key] = result.stream_version
            outcomes.append(result)
        return group

    def _state_for(
        self, batch: Sequence[Pending], keys: list[str], group: _Group
    ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Heads and stream versions the batch needs: cached, or read for those never seen."""
        heads, versions = group.heads, group.versions
        cached_heads, cached_versions = self._heads, self._versions
        missing: dict[str, list[str]] = {}
        for key, pending in zip(keys, batch, strict=True):
            if key not in heads:
                head = cached_heads.get(key)
                if head is None:
                    head = self._scalar("SELECT MAX(position) FROM events WHERE pkey = ?", key)
                heads[key] = head
            stream_key = (key, pending.request.stream)
            if stream_key not in versions:
                version = cached_versions.get(stream_key)
                if version is None:
                    missing.setdefault(key, []).append(stream_key[1])
                    version = 0  # unless the read below finds one
                versions[stream_key] = version
        for key, streams in missing.items():
            for stream, found in self._select_in(
                "SELECT stream, MAX(version) FROM events WHERE pkey = ? AND stream IN ({}) GROUP BY stream",
                key,
                streams,
            ):
                versions[(key, stream)] = found
        return heads, versions

    def _stored_ids(
        self, batch: Sequence[Pending], keys: list[str]
    ) -> dict[tuple[str, str], StoredId] | None:
        """Every client id of the batch already stored, one query per partition; None when no
        request names ids."""
        wanted: dict[str, list[str]] = {}
        for key, pending in zip(keys, batch, strict=True):
            ids = client_ids(pending.request)
            if ids:
                wanted.setdefault(key, []).extend(ids)
        if not wanted:
            return None
        stored: dict[tuple[str, str], StoredId] = {}
        for key, ids in wanted.items():
            for row in self._select_in(
                "SELECT id, stream, version, position FROM events WHERE pkey = ? AND id IN ({})", key, ids
            ):
                stored[(key, row[0])] = StoredId(*row)
        return stored

    # SQL

    def _read_data_version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def _scalar(self, sql: str, *params: object) -> int:
        row = self._connection.execute(sql, params).fetchone()
        return int(row[0] or 0)

    def _select_in(self, sql: str, key: str, values: list[str]) -> list[Any]:
        """`sql` with its `IN ({})` list filled: a power-of-two list padded with NULLs, so a few
        prepared statements serve every length; long lists take several queries."""
        unique = list(dict.fromkeys(values))
        rows: list[Any] = []
        for start in range(0, len(unique), _MAX_IN_LIST):
            chunk: list[object] = [key, *unique[start : start + _MAX_IN_LIST]]
            size = _size_class(len(chunk) - 1)
            chunk.extend(_PADDING[: size - (len(chunk) - 1)])
            rows.extend(self._connection.execute(sql.format(_in_list(size)), chunk).fetchall())
        return rows

    # the cache

    def _remember(self, group: _Group) -> None:
        self._heads.update(group.heads)
        versions = self._versions
        versions.update(group.versions)
        if len(versions) > _MAX_CACHED_STREAMS:
            # the streams cached first go: an evicted stream is read again when it is next written
            for stream_key in list(islice(versions, len(versions) - _MAX_CACHED_STREAMS * 9 // 10)):
                del versions[stream_key]

    def _forget(self) -> None:
        self._heads.clear()
        self._versions.clear()
        self._data_version = None

"""The generic tabular store: named tables of JSON rows by key, every change a new version.

A table's definition (an optional JSON Schema for its rows, a description) is one stream,
`table:{len(table)}:{table}`, versioned by `table.defined` events. Each row is a stream of its own,
`table:{len(table)}:{table}:{key}` (a key's `/` spelt `~`, which keys never hold, since stream names
never hold `/`): `table.row_written` versions carry the whole value, `table.row_deleted` is a
tombstone version. The table name is length-prefixed, so a definition's stream is never a row's,
and no table's rows are another's (`a` + `b:c` against `a:b` + `c`).

Writing a row needs no definition: a table never defined has no schema, and any JSON is a row.
When the definition has a schema, a row write is validated against the schema the definition
stream holds as the write is decided (the log, never the view); a later schema change does not
revalidate the rows already written. Versions and existence are decided on the row's stream.

Stored events are read back as the lenient structs below, which check nothing: rules tightened
later never stop the projection of what was written before.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from domain.errors import TableRowNotFound
from domain.events import Event, NewEvent
from domain.identifiers import ROW_KEY_PATTERN as ROW_KEY_PATTERN  # one home for patterns
from domain.identifiers import TABLE_PATTERN as TABLE_PATTERN
from domain.views import Delete, Upsert, ViewOp

DEFINED: Final = "table.defined"
WRITTEN: Final = "table.row_written"
DELETED: Final = "table.row_deleted"

DEFINITIONS: Final = "tables.definitions"  # by table name
LATEST: Final = "tables.latest"  # each row's latest version, tombstones included
LIVE: Final = "tables.live"  # live rows, by table then key: what a listing reads
VERSIONS: Final = "tables.versions"  # every version of every row

MAX_KEY = 128
MAX_DESCRIPTION = 1024
MAX_SCHEMA_BYTES = 32 * 1024  # as JSON: a schema is a rule, not a store of data

TableName = Annotated[str, msgspec.Meta(pattern=TABLE_PATTERN, description="a table name: agents, config.v2")]
RowKey = Annotated[
    str, msgspec.Meta(pattern=ROW_KEY_PATTERN, description="a row key: agents/planner, config.main, a:b@1")
]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]
Change = Literal["written", "deleted"]
_CHANGES: Final[dict[str, Change]] = {WRITTEN: "written", DELETED: "deleted"}


class TableDefined(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `table.defined`: the whole definition as of this version (`schema` null: none)."""

    table: str
    schema: Any = None
    description: str | None = None


class RowChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The data of a row version: the whole value, or null in a tombstone (`table.row_deleted`)."""

    table: str
    key: str
    value: Any = None


def definition_stream(table: str) -> str:
    return f"table:{len(table)}:{table}"


def row_stream(table: str, key: str) -> str:
    """Keys hold no `~` (their pattern says so): spelling `/` with it keeps one stream per key."""
    return f"{definition_stream(table)}:{key.replace('/', '~')}"


def rows_prefix(table: str) -> str:
    """The view-key prefix of one table's rows; no other table's keys start with it."""
    return f"{len(table)}:{table}:"


def row_key(table: str, key: str) -> str:
    """Within a table, view-key order is row-key order: a listing pages through keys in order."""
    return f"{rows_prefix(table)}{key}"


def versions_prefix(table: str, key: str) -> str:
    """The key is length-prefixed too: no row's versions start with another's (`a` and `a:1`)."""
    return f"{rows_prefix(table)}{len(key)}:{key}:"


def version_key(table: str, key: str, version: int) -> str:
    return f"{versions_prefix(table, key)}{version:012d}"


def defined_event(table: str, schema: Any, description: str | None) -> NewEvent:
    record = TableDefined(table=table, schema=schema, description=description)
    return NewEvent(type=DEFINED, data=msgspec.to_builtins(record))


def written_event(table: str, key: str, value: Any) -> NewEvent:
    return NewEvent(type=WRITTEN, data=msgspec.to_builtins(RowChanged(table=table, key=key, value=value)))


def schema_of(definition: Event | None) -> Any:
    """The schema a table's last definition event holds; None when there is none."""
    if definition is None:
        return None
    return msgspec.convert(definition.data, TableDefined).schema


def is_live(last: Event) -> bool:
    """Whether a row's stream, ending with `last`, holds a value (a tombstone does not)."""
    return last.type == WRITTEN


def decide_delete(table: str, key: str, last: Event | None) -> NewEvent:
    """A tombstone version of a live row; `TableRowNotFound` when there is none to delete."""
    if last is None:
        raise TableRowNotFound(table, key)
    if not is_live(last):
        raise TableRowNotFound(table, key, deleted=True, version=last.version)
    return NewEvent(type=DELETED, data=msgspec.to_builtins(RowChanged(table=table, key=key)))


class TablesProjection:
    """Definitions by table; per row version: the row's latest document, its entry among the live
    rows, and its history document.

    Every document is the event's own version, so no op reads another document. A tombstone
    replaces the latest document (GET answers 404 naming the deleted version) and removes the row
    from the live rows; its history documents stay.
    """

    name = "tables"
    handles = frozenset({DEFINED, *_CHANGES})
    collections = frozenset({DEFINITIONS, LATEST, LIVE, VERSIONS})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        stamp = {
            "version": event.version,
            "position": event.position,
            "updated_at": msgspec.to_builtins(event.recorded_at),
            "updated_by": event.meta.user_id,
        }
        if event.type == DEFINED:
            defined = msgspec.convert(event.data, TableDefined)
            data = {"table": defined.table, "schema": defined.schema, "description": defined.description}
            doc = Upsert(
                collection=DEFINITIONS, key=defined.table, data={**data, **stamp}, position=event.position
            )
            return [doc]
        row = msgspec.convert(event.data, RowChanged)
        deleted = event.type == DELETED
        version = {"table": row.table, "key": row.key, "value": row.value, **stamp,
                   "change": _CHANGES[event.type], "deleted": deleted}  # fmt: skip
        key, position = row_key(row.table, row.key), event.position
        listed: ViewOp = (
            Delete(collection=LIVE, key=key, position=position)
            if deleted
            else Upsert(collection=LIVE, key=key, data=version, position=position)
        )
        history = version_key(row.table, row.key, event.version)
        return [
            Upsert(collection=LATEST, key=key, data=version, position=position),
            listed,
            Upsert(collection=VERSIONS, key=history, data=version, position=position),
        ]

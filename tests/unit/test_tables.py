"""The tabular store: its keys and streams, decisions made on the log, and its pure projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory.spine import MemorySpine
from app.http.preconditions import Precondition
from app.usecases import tables
from domain.context import RequestContext
from domain.errors import TableConflict, TableRowNotFound, TableSchemaViolation
from domain.events import STREAM_PATTERN, Event, EventMeta
from domain.identifiers import ROW_KEY_PATTERN, TABLE_PATTERN, matches
from domain.owned import owning_route
from domain.tables import (
    DEFINED,
    DEFINITIONS,
    DELETED,
    LATEST,
    LIVE,
    VERSIONS,
    WRITTEN,
    TablesProjection,
    decide_delete,
    definition_stream,
    row_key,
    row_stream,
    rows_prefix,
    version_key,
    versions_prefix,
)
from domain.views import Delete, Upsert

CTX = RequestContext(tenant_id="t1", env="dev", project_id="p1", user_id="u1")


def event(event_type: str, version: int, data: dict[str, Any], position: int = 7) -> Event:
    return Event(
        id=f"e{position}",
        type=event_type,
        stream="table:1:t:k",
        version=version,
        position=position,
        data=data,
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u1"),
        recorded_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
    )


def test_streams_belong_to_the_tables_route_and_stay_valid_stream_names() -> None:
    assert definition_stream("config") == "table:6:config"
    assert row_stream("config", "agents/planner") == "table:6:config:agents~planner"
    longest = row_stream("t" * 64, "k/" * 63 + "kk")
    assert matches("t" * 64, TABLE_PATTERN)
    assert matches("k/" * 63 + "kk", ROW_KEY_PATTERN)
    assert matches(longest, STREAM_PATTERN), len(longest)
    for stream, types in (("table:6:config", ["x.y"]), ("mine", [WRITTEN]), ("mine", [DEFINED])):
        assert owning_route(stream, types) == "/v1/tables/{table}"


def test_no_two_rows_share_a_stream_or_a_view_key() -> None:
    # '/' is spelt '~' in streams: keys never hold '~', so 'a/b' has the stream of no other key
    pairs = [("a", "b:c"), ("ab", "c"), ("a", "bc"), ("a", "b/c"), ("a", "b.c"), ("a.b", "c"), ("a", "b:c/d")]
    streams = {row_stream(table, key) for table, key in pairs} | {
        definition_stream("a"),
        definition_stream("ab"),
    }
    assert len(streams) == len(pairs) + 2
    assert not matches("a~b", ROW_KEY_PATTERN)
    assert not row_key("ab", "c").startswith(rows_prefix("a"))
    assert not version_key("t", "a:1", 1).startswith(versions_prefix("t", "a"))
    keys = ["a", "a.b", "a/b", "a/b/c", "a:b", "b"]
    assert sorted(row_key("t", k) for k in keys) == [row_key("t", k) for k in sorted(keys)]
    versions = [version_key("t", "a", n) for n in (1, 2, 10, 100)]
    assert versions == sorted(versions)


def test_a_delete_needs_a_live_row() -> None:
    with pytest.raises(TableRowNotFound) as never:
        decide_delete("t", "k", None)
    assert (never.value.deleted, never.value.version) == (False, None)
    with pytest.raises(TableRowNotFound) as gone:
        decide_delete("t", "k", event(DELETED, 4, {"table": "t", "key": "k"}))
    assert (gone.value.deleted, gone.value.version) == (True, 4)
    tombstone = decide_delete("t", "k", event(WRITTEN, 3, {"table": "t", "key": "k", "value": 1}))
    assert (tombstone.type, tombstone.data) == (DELETED, {"table": "t", "key": "k", "value": None})


async def test_a_row_is_held_to_the_schema_on_the_log_with_no_view_at_all() -> None:
    """No projection runs here: the schema can only come from the definition's stream."""
    spine = MemorySpine()
    await tables.define(spine, CTX, "t", {"type": "integer"}, None, None)
    with pytest.raises(TableSchemaViolation) as refused:
        await tables.write_row(spine, CTX, "t", "k", "text", None)
    assert (refused.value.field, refused.value.schema_version) == ("/value", 1)
    assert (await tables.write_row(spine, CTX, "t", "k", 5, None)).stream_version == 1
    await tables.define(spine, CTX, "t", None, "no schema", None)
    assert (await tables.write_row(spine, CTX, "t", "k", "text", None)).stream_version == 2
    with pytest.raises(TableConflict):
        await tables.delete_row(spine, CTX, "t", "k", Precondition(frozenset({1})))
    assert (await tables.delete_row(spine, CTX, "t", "k", None)).stream_version == 3
    assert (await spine.head(CTX.partition)) == 5


def test_the_projection_keeps_definitions_latest_live_rows_and_history() -> None:
    projection = TablesProjection()
    defined = projection.apply(event(DEFINED, 2, {"table": "t", "schema": True, "description": "d"}))
    assert [(op.collection, op.key) for op in defined] == [(DEFINITIONS, "t")]
    assert isinstance(defined[0], Upsert)
    assert {k: defined[0].data[k] for k in ("schema", "description", "version", "position")} == {
        "schema": True, "description": "d", "version": 2, "position": 7}  # fmt: skip
    written = projection.apply(event(WRITTEN, 1, {"table": "t", "key": "a/b", "value": [1]}))
    assert [(type(op), op.collection, op.key) for op in written] == [
        (Upsert, LATEST, "1:t:a/b"), (Upsert, LIVE, "1:t:a/b"), (Upsert, VERSIONS, "1:t:3:a/b:000000000001")]  # fmt: skip
    gone = projection.apply(event(DELETED, 2, {"table": "t", "key": "a/b"}, position=8))
    assert [(type(op), op.collection) for op in gone] == [
        (Upsert, LATEST),
        (Delete, LIVE),
        (Upsert, VERSIONS),
    ]
    latest = gone[0]
    assert isinstance(latest, Upsert)
    assert (latest.data["deleted"], latest.data["value"], latest.data["change"], latest.position) == (
        True, None, "deleted", 8)  # fmt: skip
    # stored events are read leniently: a field added later, or one a rule would now refuse
    odd = projection.apply(event(WRITTEN, 3, {"table": "t", "key": "bad key", "value": 1, "extra": 2}))
    assert odd[0].key == "1:t:bad key"

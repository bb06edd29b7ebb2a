"""Table definitions and row writes, decided on the log, never on the view (which may lag).

A definition replaces whatever definition the table has; its schema is checked before anything
is appended. A row write reads the table's definition stream for the schema it must satisfy (the
schema as of the write: one defined concurrently may land just before or just after it), then
appends to the row's stream expecting what its precondition names (`any` without one: the last
writer wins). A delete is one unit of work (`app/usecases/unit_of_work.py`): it reads the row's
last event, refuses when no row is live (404, before any precondition: RFC 9110 §13.2.1), and
appends a tombstone expecting the version it read.
"""

from __future__ import annotations

from typing import Any

from adapters.json_schema import check_schema, violation
from app.http.preconditions import Precondition
from app.usecases.unit_of_work import append_expecting, decide_and_append, expected_at, last_event
from domain.context import RequestContext
from domain.errors import TableConflict, TableSchemaViolation
from domain.events import AppendResult, Event, NewEvent
from domain.ports import EventSpine
from domain.tables import (
    decide_delete,
    defined_event,
    definition_stream,
    is_live,
    row_stream,
    schema_of,
    written_event,
)


async def define(
    spine: EventSpine,
    ctx: RequestContext,
    table: str,
    schema: Any,
    description: str | None,
    wanted: Precondition | None,
) -> AppendResult:
    """A new version of the table's definition; `TableSchemaInvalid` for a schema rows could not
    be held to, `TableConflict` when `wanted` is not the definition's version."""
    check_schema(schema)
    stream = definition_stream(table)
    expected = await expected_at(wanted, spine, ctx.partition, stream)
    event = defined_event(table, schema, description)
    return await append_expecting(spine, ctx, stream, [event], expected, conflict=TableConflict)


async def write_row(
    spine: EventSpine, ctx: RequestContext, table: str, key: str, value: Any, wanted: Precondition | None
) -> AppendResult:
    """A new version of the row; `TableSchemaViolation` when the table's schema refuses `value`."""
    definition, version = await last_event(spine, ctx.partition, definition_stream(table))
    found = violation(schema_of(definition), value)
    if found is not None:
        raise TableSchemaViolation(table, version, f"/value{found.pointer}", found.message, found.keyword)
    stream = row_stream(table, key)
    expected = await expected_at(wanted, spine, ctx.partition, stream, live=is_live)
    return await append_expecting(
        spine, ctx, stream, [written_event(table, key, value)], expected, conflict=TableConflict
    )


async def delete_row(
    spine: EventSpine, ctx: RequestContext, table: str, key: str, wanted: Precondition | None
) -> AppendResult:
    """A tombstone version of a live row; `TableRowNotFound` when there is none."""

    def decide(last: Event | None) -> NewEvent:
        return decide_delete(table, key, last)

    decided = await decide_and_append(
        spine, ctx, row_stream(table, key), decide, precondition=wanted, conflict=TableConflict
    )
    return decided.result

"""Save writes decided on the save's stream, never on the view (which may lag).

An update or delete is one unit of work (`app/usecases/unit_of_work.py`): it reads the stream's
last event, decides, and appends expecting the version it read. With a precondition the writer
named, a conflict is the answer (409); without one, another writer got there first and the write
is decided again on the new version (last writer wins). A save never created is 404 whatever the
precondition (RFC 9110 §13.2.1: the answer without it).
"""

from __future__ import annotations

from typing import Any

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import append_expecting, decide_and_append
from domain.context import RequestContext
from domain.errors import SaveConflict
from domain.events import NO_STREAM, AppendResult, Event, NewEvent
from domain.ports import EventSpine
from domain.saves import DELETED, created_event, decide_delete, decide_update, stream_of


async def create(
    spine: EventSpine, ctx: RequestContext, kind: str, save_id: str, name: str, body: Any
) -> AppendResult:
    """Version 1 of a new save; `SaveConflict` when the id exists (deleted or not)."""
    event = created_event(kind, save_id, name, body)
    return await append_expecting(
        spine, ctx, stream_of(kind, save_id), [event], NO_STREAM, conflict=SaveConflict
    )


async def update(
    spine: EventSpine,
    ctx: RequestContext,
    kind: str,
    save_id: str,
    name: str,
    body: Any,
    wanted: Precondition | None,
) -> AppendResult:
    def decide(last: Event | None) -> NewEvent:
        # `If-Match: *` holds of a live save only: writing over a tombstone brings the save back
        precondition = _version(wanted, last, live=last is not None and last.type != DELETED)
        return decide_update(kind, save_id, name, body, last, precondition)

    decided = await decide_and_append(
        spine, ctx, stream_of(kind, save_id), decide, precondition=wanted, conflict=SaveConflict
    )
    return decided.result


async def delete(
    spine: EventSpine, ctx: RequestContext, kind: str, save_id: str, wanted: Precondition | None
) -> AppendResult:
    def decide(last: Event | None) -> NewEvent:
        # deleting a tombstone is 404 whatever the precondition: `decide_delete` says so
        return decide_delete(kind, save_id, last, _version(wanted, last, live=True))

    decided = await decide_and_append(
        spine, ctx, stream_of(kind, save_id), decide, precondition=wanted, conflict=SaveConflict
    )
    return decided.result


def _version(wanted: Precondition | None, last: Event | None, *, live: bool) -> int | None:
    """The version `decide_*` expects: none when unconditional, or when there is no save at all
    (that is 404, decided there)."""
    if wanted is None or last is None:
        return None
    return wanted.version_for(last.version, live=live)

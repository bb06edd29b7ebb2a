"""Feature flag writes on the flag's stream: a save replaces the definition, a delete needs a live one.

A save decides nothing about what is there (it replaces it), so it appends expecting `any`, or
the version its precondition names (`expected_at`). A delete is one unit of work
(`app/usecases/unit_of_work.py`): it reads the flag's last event, refuses when no flag is live
(404, before any precondition: RFC 9110 §13.2.1), and appends expecting the version it read.
"""

from __future__ import annotations

from typing import Final

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import append_expecting, decide_and_append, expected_at
from domain.context import RequestContext
from domain.errors import FlagConflict
from domain.events import AppendResult, Event, NewEvent
from domain.flags import FlagSpec, changed_event, check_values, decide_delete, is_live, stream_of
from domain.ports import EventSpine

MAX_ATTEMPTS: Final = 10  # an unconditional delete decides again when a write landed in between


async def save(
    spine: EventSpine,
    ctx: RequestContext,
    key: str,
    spec: FlagSpec,
    reason: str,
    wanted: Precondition | None,
) -> AppendResult:
    """The flag's whole definition; with a precondition, only over a version it names (`*`: a
    live flag)."""
    check_values(spec)
    stream = stream_of(key)
    expected = await expected_at(wanted, spine, ctx.partition, stream, live=is_live)
    return await append_expecting(
        spine, ctx, stream, [changed_event(key, spec, reason)], expected, conflict=FlagConflict
    )


async def remove(
    spine: EventSpine, ctx: RequestContext, key: str, reason: str, wanted: Precondition | None
) -> AppendResult:
    """A deletion of the live flag; `FlagNotFound` when there is none."""

    def decide(last: Event | None) -> NewEvent:
        return decide_delete(key, last, reason)

    decided = await decide_and_append(
        spine,
        ctx,
        stream_of(key),
        decide,
        precondition=wanted,
        conflict=FlagConflict,
        attempts=MAX_ATTEMPTS,
    )
    return decided.result

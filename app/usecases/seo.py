"""SEO config writes on the page's stream: a save replaces the config, a delete needs a live one.

A delete is one unit of work (`app/usecases/unit_of_work.py`): it reads the page's last event,
refuses when no config is live (404, before any precondition: RFC 9110 §13.2.1), and appends
expecting the version it read. With a precondition the writer named, a conflict is the answer
(409); without one, a write that landed in between makes it decide again.
"""

from __future__ import annotations

from typing import Final

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import append_expecting, decide_and_append, expected_at
from domain.context import RequestContext
from domain.errors import SeoConfigConflict, SeoConfigNotFound
from domain.events import AppendResult, Event, NewEvent
from domain.ports import EventSpine
from domain.seo import SeoConfig, deleted_event, is_live, saved_event, stream_of

MAX_ATTEMPTS: Final = 10  # an unconditional delete decides again when a write landed in between


async def save(
    spine: EventSpine, ctx: RequestContext, page: str, config: SeoConfig, wanted: Precondition | None
) -> AppendResult:
    """The page's whole config; with a precondition, only over a version it names (`*`: a live
    config)."""
    app_id, surface_id = scope_of(ctx)
    event = saved_event(app_id, surface_id, page, config, ctx.user_id)
    stream = stream_of(app_id, surface_id, page)
    expected = await expected_at(wanted, spine, ctx.partition, stream, live=is_live)
    return await append_expecting(spine, ctx, stream, [event], expected, conflict=SeoConfigConflict)


async def remove(
    spine: EventSpine, ctx: RequestContext, page: str, wanted: Precondition | None
) -> AppendResult:
    """A deletion of the page's live config; `SeoConfigNotFound` when there is none."""
    app_id, surface_id = scope_of(ctx)

    def decide(last: Event | None) -> NewEvent:
        if not is_live(last):
            raise SeoConfigNotFound(page)
        return deleted_event(app_id, surface_id, page, ctx.user_id)

    stream = stream_of(app_id, surface_id, page)
    decided = await decide_and_append(
        spine,
        ctx,
        stream,
        decide,
        precondition=wanted,
        conflict=SeoConfigConflict,
        attempts=MAX_ATTEMPTS,
    )
    return decided.result


def scope_of(ctx: RequestContext) -> tuple[str, str]:
    """The app and surface a request's SEO configs belong to."""
    # `requires_app`: the identity guard made sure of both
    assert ctx.app_id is not None
    assert ctx.surface_id is not None
    return ctx.app_id, ctx.surface_id

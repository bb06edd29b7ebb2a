"""Page content writes, each decided on the page's stream, never on the view (which may lag).

Every write is a unit of work: read the page's last event (its state: version, latest draft,
published version), decide, and append expecting the version read, so the state an event carries
forward is never stale. Publishing a draft and rolling back read one more event first, the version
they copy, from the log (an event never changes once written). With a precondition the writer
named, a conflict is the answer (409); without one, a write that landed in between makes it
decide again. A page that has no content is 404 before any precondition (RFC 9110 §13.2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from app.http.preconditions import Precondition
from app.usecases.unit_of_work import (
    MAX_ATTEMPTS,
    append_expecting,
    decide_and_append,
    event_at,
    last_event,
    retrying,
)
from domain.context import RequestContext
from domain.errors import PageContentConflict
from domain.events import NO_STREAM, AppendResult, Event, ExpectedVersion, NewEvent
from domain.pages import (
    PageContent,
    PageState,
    decide_publish,
    decide_rollback,
    direct_publish_event,
    draft_event,
    state_of,
    stream_of,
)
from domain.ports import EventSpine

Pick = Callable[[PageState], int | None]
"""The version a decision copies, chosen on the page's state (None: none)."""
DecideFrom = Callable[[PageState, Event | None], NewEvent]
"""The decision on the page's state and the event it copies (None: there is no such version)."""


class Copied(NamedTuple):
    """What a publish or a rollback appended, and the version whose blocks it copied."""

    result: AppendResult
    from_version: int


async def save_draft(
    spine: EventSpine, ctx: RequestContext, page: str, content: PageContent, wanted: Precondition | None
) -> AppendResult:
    """A new draft; the published content stays as it is."""
    return await _writing(spine, ctx, page, content, wanted, draft_event)


async def publish_content(
    spine: EventSpine, ctx: RequestContext, page: str, content: PageContent, wanted: Precondition | None
) -> AppendResult:
    """New published content sent as it is (no draft): the latest draft stays as it is."""
    return await _writing(spine, ctx, page, content, wanted, direct_publish_event)


async def _writing(
    spine: EventSpine,
    ctx: RequestContext,
    page: str,
    content: PageContent,
    wanted: Precondition | None,
    event_of: Callable[[str, str, str, PageContent, PageState], NewEvent],
) -> AppendResult:
    """Content sent by the client, as the event `event_of` makes of it on the page's state."""
    app_id, surface_id = scope_of(ctx)

    def decide(last: Event | None) -> NewEvent:
        return event_of(app_id, surface_id, page, content, state_of(last))

    stream = stream_of(app_id, surface_id, page)
    decided = await decide_and_append(
        spine, ctx, stream, decide, precondition=wanted, conflict=PageContentConflict
    )
    return decided.result


async def publish(
    spine: EventSpine, ctx: RequestContext, page: str, version: int | None, wanted: Precondition | None
) -> Copied:
    """Publish the draft at `version` (default: the latest draft), copying its blocks."""
    app_id, surface_id = scope_of(ctx)

    def pick(state: PageState) -> int | None:
        return version if version is not None else state.draft

    def decide(state: PageState, source: Event | None) -> NewEvent:
        return decide_publish(app_id, surface_id, page, state, version, source)

    return await _copying(spine, ctx, stream_of(app_id, surface_id, page), pick, decide, wanted)


async def rollback(
    spine: EventSpine, ctx: RequestContext, page: str, to: int, wanted: Precondition | None
) -> Copied:
    """New published content, a copy of the published version `to`."""
    app_id, surface_id = scope_of(ctx)

    def decide(state: PageState, target: Event | None) -> NewEvent:
        return decide_rollback(app_id, surface_id, page, state, to, target)

    return await _copying(spine, ctx, stream_of(app_id, surface_id, page), lambda _: to, decide, wanted)


async def _copying(
    spine: EventSpine,
    ctx: RequestContext,
    stream: str,
    pick: Pick,
    decide: DecideFrom,
    wanted: Precondition | None,
) -> Copied:
    """The unit of work of a decision that copies an earlier version of the page: the last
    event, the version it picks, then the decision and the append expecting the version read."""

    async def attempt() -> Copied:
        last, current = await last_event(spine, ctx.partition, stream)
        state = state_of(last)
        number = pick(state)
        source = (
            await event_at(spine, ctx.partition, stream, number) if number and number <= current else None
        )
        event = decide(state, source)
        expected: ExpectedVersion = current or NO_STREAM
        if wanted is not None:
            expected = wanted.version_for(current, live=last is not None)
        result = await append_expecting(spine, ctx, stream, [event], expected, conflict=PageContentConflict)
        assert source is not None  # a decision that copies nothing raised instead
        return Copied(result, source.version)

    return await retrying(attempt, attempts=1 if wanted is not None else MAX_ATTEMPTS)


def scope_of(ctx: RequestContext) -> tuple[str, str]:
    """The app and surface a request's pages belong to."""
    # `requires_app`: the identity guard made sure of both
    assert ctx.app_id is not None
    assert ctx.surface_id is not None
    return ctx.app_id, ctx.surface_id

"""Page content: key schemes, the decisions made on a page's stream, and the projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from domain.errors import NoDraftToPublish, NotADraft, NotAPublishedVersion, PageNotFound, PageVersionNotFound
from domain.events import Event, EventMeta, NewEvent
from domain.owned import owning_route
from domain.pages import (
    DRAFT_SAVED,
    NEVER_WRITTEN,
    PAGES,
    PUBLISHED,
    ROLLED_BACK,
    VERSIONS,
    PageContent,
    PagesProjection,
    PageState,
    decide_publish,
    decide_rollback,
    direct_publish_event,
    draft_event,
    page_key,
    state_of,
    stream_of,
    version_key,
    versions_prefix,
)
from domain.views import Upsert

HERO = {"id": "hero", "type": "hero", "data": {"h": 1}}
CONTENT = msgspec.convert({"blocks": [HERO], "title": "Home"}, PageContent)


def stored(new: NewEvent, version: int, position: int | None = None) -> Event:
    return Event(
        id=f"e{version}",
        type=new.type,
        stream=stream_of("app1", "web", "home"),
        version=version,
        position=position or version,
        data=new.data,
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u1"),
        recorded_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )


def test_streams_and_keys_never_join_two_scopes_or_pages_into_one() -> None:
    assert stream_of("a:b", "c", "home") != stream_of("a", "b:c", "home")
    assert page_key("a:b", "c", "home") != page_key("a", "b:c", "home")
    assert not version_key("app1", "web", "home2", 1).startswith(versions_prefix("app1", "web", "home"))
    keys = [version_key("app1", "web", "home", n) for n in (1, 2, 10, 100)]
    assert keys == sorted(keys)  # history in version order
    assert owning_route(stream_of("a", "b", "home"), ["x.y"]) == "/v1/pages/{page}/content"
    assert owning_route("mine", [ROLLED_BACK]) == "/v1/pages/{page}/content"
    assert owning_route("page:1", ["page.viewed"]) is None  # a client's own page events stay free


def test_each_event_carries_the_state_the_next_decision_needs() -> None:
    assert state_of(None) == NEVER_WRITTEN
    first = stored(draft_event("app1", "web", "home", CONTENT, NEVER_WRITTEN), 1)
    assert state_of(first) == PageState(1, 1, None)
    published = stored(decide_publish("app1", "web", "home", state_of(first), None, first), 2)
    assert (published.type, published.data["from_version"], published.data["blocks"]) == (
        PUBLISHED,
        1,
        [HERO],
    )
    assert state_of(published) == PageState(2, 1, 2)
    second = stored(draft_event("app1", "web", "home", CONTENT, state_of(published)), 3)
    assert state_of(second) == PageState(3, 3, 2)
    direct = stored(direct_publish_event("app1", "web", "home", CONTENT, state_of(second)), 4)
    assert (state_of(direct), direct.data["from_version"]) == (PageState(4, 3, 4), None)
    back = stored(decide_rollback("app1", "web", "home", state_of(direct), 2, published), 5)
    assert (back.type, back.data["from_version"], state_of(back)) == (ROLLED_BACK, 2, PageState(5, 3, 5))


@pytest.mark.parametrize(
    ("decide", "error"),
    [
        (lambda: decide_publish("a", "s", "p", NEVER_WRITTEN, None, None), PageNotFound),
        (lambda: decide_publish("a", "s", "p", PageState(1, None, 1), None, None), NoDraftToPublish),
        (lambda: decide_publish("a", "s", "p", PageState(1, None, 1), 2, None), PageVersionNotFound),
        (lambda: decide_rollback("a", "s", "p", NEVER_WRITTEN, 1, None), PageNotFound),
        (lambda: decide_rollback("a", "s", "p", PageState(1, 1, None), 3, None), PageVersionNotFound),
    ],
)
def test_what_is_not_there_is_refused(decide: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        decide()


def test_a_publish_copies_a_draft_only_and_a_rollback_a_publication_only() -> None:
    draft = stored(draft_event("a", "s", "p", CONTENT, NEVER_WRITTEN), 1)
    published = stored(decide_publish("a", "s", "p", state_of(draft), None, draft), 2)
    with pytest.raises(NotADraft):
        decide_publish("a", "s", "p", state_of(published), 2, published)
    with pytest.raises(NotAPublishedVersion):
        decide_rollback("a", "s", "p", state_of(published), 1, draft)


def test_the_projection_writes_the_summary_and_the_version_of_each_event_only() -> None:
    draft = stored(draft_event("app1", "web", "home", CONTENT, PageState(1, None, 1)), 2, position=9)
    summary, version = PagesProjection().apply(draft)
    assert isinstance(summary, Upsert)
    assert isinstance(version, Upsert)
    assert (summary.collection, summary.key, summary.position) == (PAGES, page_key("app1", "web", "home"), 9)
    assert {k: summary.data[k] for k in ("version", "change", "draft_version", "published_version")} == {
        "version": 2, "change": "draft", "draft_version": 2, "published_version": 1}  # fmt: skip
    assert (version.collection, version.key) == (VERSIONS, version_key("app1", "web", "home", 2))
    assert (version.data["blocks"], version.data["by"], version.data["change"]) == ([HERO], "u1", "draft")
    assert PagesProjection.handles == {DRAFT_SAVED, PUBLISHED, ROLLED_BACK}


def test_stored_events_are_read_leniently() -> None:
    """An event of an older shape (no title, no pointers, blocks a later rule would refuse) projects."""
    old = Event(
        id="e1", type=PUBLISHED, stream="x", version=1, position=1,
        data={"app_id": "a", "surface_id": "s", "page": "p", "blocks": [{"id": "dup"}, {"id": "dup"}]},
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1"), recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    summary, version = PagesProjection().apply(old)
    assert isinstance(summary, Upsert)
    assert isinstance(version, Upsert)
    assert (summary.data["published_version"], summary.data["draft_version"]) == (1, None)
    assert version.data["blocks"] == [{"id": "dup"}, {"id": "dup"}]

"""The realtime registry: keys, the decisions made on a thread's stream, and the projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from domain.errors import (
    InvalidCursor,
    NotThreadMember,
    NotThreadOwner,
    OwnerNotRemovable,
    ThreadArchived,
    ThreadNotFound,
    TooManyMembers,
)
from domain.events import Event, EventMeta, NewEvent
from domain.owned import owning_route
from domain.realtime import (
    BY_MEMBER,
    MAX_MEMBERS,
    REGISTRY,
    NewMessage,
    NewThread,
    Patch,
    RealtimeProjection,
    ThreadState,
    authorize,
    decide_changes,
    decide_create,
    decide_message,
    listing_suffix,
    member_key,
    member_prefix,
    parse_cursor,
    registry_version_of,
    state_of,
    stream_of,
)
from domain.views import Delete, Upsert

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def stored(new: NewEvent, version: int, *, user: str = "u1", kind: str = "thread") -> Event:
    return Event(
        id=new.id or f"e{version}",
        type=new.type,
        stream=stream_of(kind, "t-1"),
        version=version,
        position=version + 10,
        data=new.data,
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id=user, surface_id="web"),
        recorded_at=AT,
    )


def created(members: tuple[str, ...] = ("u2",), *, kind: Any = "thread", title: str | None = "Hi") -> Event:
    new = decide_create(
        kind, "t-1", NewThread(title=title, members=list(members)), owner="u1", surface_id="web"
    )
    return stored(new, 1, kind=kind)


def patch(**fields: Any) -> Patch:
    return msgspec.convert(fields, Patch)


def replay(state: ThreadState, events: list[NewEvent]) -> list[Event]:
    return [stored(new, state.version + n) for n, new in enumerate(events, 1)]


def test_streams_and_keys_never_join_two_users_surfaces_or_kinds_into_one() -> None:
    assert stream_of("thread", "a") != stream_of("canvas", "a")
    assert not member_prefix("thread", "u1:0").startswith(member_prefix("thread", "u1"))
    one, two = member_key("thread", "u", False, "a:b", "c"), member_key("thread", "u", False, "a", "b:c")
    assert one != two
    assert member_key("thread", "u", False, "web", "x") < member_key(
        "thread", "u", True, "a", "a"
    )  # live first
    assert owning_route("thread:t-1", ["x"]) == "/v1/threads"
    assert owning_route("mine", ["canvas.created"]) == "/v1/canvases"
    assert owning_route("threads", ["threadx.y"]) is None


@pytest.mark.parametrize(("archived", "surface", "ident"), [(False, "web", "t-1"), (True, "a:b", "c:d.e@f")])
def test_a_listing_cursor_reads_back_what_it_was(archived: bool, surface: str, ident: str) -> None:
    cursor = parse_cursor(listing_suffix(archived, surface, ident))
    assert (cursor.archived, cursor.surface, cursor.ident) == (archived, surface, ident)


@pytest.mark.parametrize(
    "raw", ["", "x", "2:3:web:t", "0:3:we:t", "0:4:web:t", "0:3:web:", "0:3:web:a b", "0:x:web:t", "0:0::t"]
)
def test_anything_else_is_an_invalid_cursor(raw: str) -> None:
    with pytest.raises(InvalidCursor):
        parse_cursor(raw)


def test_the_creator_owns_a_thread_and_is_its_member() -> None:
    event = created(("u2", "u1", "u2"))
    assert event.type == "thread.created"
    state = state_of(event)
    assert (state.owner, state.members, state.surface_id, state.title, state.version) == (
        "u1", ("u1", "u2"), "web", "Hi", 1)  # fmt: skip
    assert (state.created_by, state.created_at) == ("u1", "2026-11-28T12:00:00Z")  # its event's own time
    assert created(kind="canvas").type == "canvas.created"
    crowd = NewThread(members=[f"m{n}" for n in range(MAX_MEMBERS)])
    with pytest.raises(TooManyMembers):
        decide_create("thread", "t-1", crowd, owner="u1", surface_id="web")  # the owner is one more


def test_only_the_owner_changes_the_registry_and_an_admin_only_transfers() -> None:
    state = state_of(created())
    assert authorize(state, "thread", "t-1", "u1", admin=False, patch=patch(title="x")) == "owner"
    assert authorize(state, "thread", "t-1", "u1", admin=True, patch=patch(title="x")) == "owner"
    assert authorize(state, "thread", "t-1", "a1", admin=True, patch=patch(owner="u2")) == "tenant_admin"
    for caller, admin, fields in (
        ("u2", False, {"title": "x"}),  # a member
        ("u9", False, {"owner": "u9"}),  # an outsider taking it
        ("a1", True, {"owner": "u2", "title": "x"}),  # an admin doing more than a transfer
        ("a1", True, {"archived": True}),
    ):
        with pytest.raises(NotThreadOwner):
            authorize(state, "thread", "t-1", caller, admin=admin, patch=patch(**fields))
    with pytest.raises(ThreadNotFound):
        authorize(None, "thread", "t-1", "u1", admin=True, patch=patch(title="x"))


def test_changes_are_events_in_a_fixed_order_each_carrying_the_entry_after_it() -> None:
    state = state_of(created())
    events = decide_changes(
        state,
        patch(archived=True, remove_members=["u1"], owner="u3", add_members=["u4", "u2"], title="New"),
        "owner",
    )
    assert [e.type for e in events] == [
        "thread.retitled", "thread.members_added", "thread.owner_transferred", "thread.members_removed",
        "thread.archived",
    ]  # fmt: skip
    assert [(e.data.get("previous_title"), e.data.get("added"), e.data.get("previous_owner"), e.data.get("removed"))
            for e in events] == [("Hi", None, None, None), (None, ["u4", "u3"], None, None),
                                 (None, None, "u1", None), (None, None, None, ["u1"]), (None, None, None, None)]  # fmt: skip
    states = [state_of(e) for e in replay(state, events)]
    assert [(s.title, s.owner, s.members, s.archived) for s in states] == [
        ("New", "u1", ("u1", "u2"), False),
        ("New", "u1", ("u1", "u2", "u3", "u4"), False),
        ("New", "u3", ("u1", "u2", "u3", "u4"), False),
        ("New", "u3", ("u2", "u3", "u4"), False),
        ("New", "u3", ("u2", "u3", "u4"), True),
    ]
    assert {s.created_at for s in states} == {state.created_at}  # carried forward from `created`
    assert events[2].data["authority"] == "owner"
    assert decide_changes(state, patch(owner="u2"), "tenant_admin")[0].data["authority"] == "tenant_admin"


def test_what_changes_nothing_makes_no_event() -> None:
    state = state_of(created())
    assert (
        decide_changes(
            state, patch(title="Hi", add_members=["u2"], remove_members=["u9"], owner="u1"), "owner"
        )
        == []
    )


def test_refusals() -> None:
    state = state_of(created())
    with pytest.raises(OwnerNotRemovable):
        decide_changes(state, patch(remove_members=["u1"]), "owner")
    with pytest.raises(OwnerNotRemovable):  # the new owner, after the transfer
        decide_changes(state, patch(owner="u2", remove_members=["u2"]), "owner")
    with pytest.raises(TooManyMembers):
        decide_changes(state, patch(add_members=[f"m{n}" for n in range(MAX_MEMBERS - 1)]), "owner")
    archived = state_of(replay(state, decide_changes(state, patch(archived=True), "owner"))[-1])
    with pytest.raises(ThreadArchived):
        decide_changes(archived, patch(title="again"), "owner")
    with pytest.raises(ThreadArchived):
        decide_message(archived, "thread", "t-1", "u2", NewMessage(content="hi"), "m1")
    for fields in (
        {},
        {"add_members": ["u5"], "remove_members": ["u5"]},
        {"archived": False},
        {"owner": "a b"},
    ):
        with pytest.raises(msgspec.ValidationError):
            patch(**fields)


def test_members_post_messages_pointing_to_the_registry_in_force() -> None:
    state = state_of(created())
    message = decide_message(state, "thread", "t-1", "u2", NewMessage(content={"text": "hi"}), "m1")
    assert (message.type, message.id, message.data) == (
        "thread.message_posted", "m1", {"content": {"text": "hi"}, "metadata": None, "registry_version": 1})  # fmt: skip
    assert registry_version_of(stored(message, 7)) == 1
    assert registry_version_of(created()) == 1
    with pytest.raises(NotThreadMember):
        decide_message(state, "thread", "t-1", "u9", NewMessage(content="hi"), "m2")
    with pytest.raises(ThreadNotFound):
        decide_message(None, "thread", "t-1", "u1", NewMessage(content="hi"), "m3")
    for content in (None, "x" * (64 * 1024)):
        with pytest.raises(ValueError, match="content"):
            NewMessage(content=content)


def test_the_projection_keeps_the_entry_and_one_copy_per_member() -> None:
    projection = RealtimeProjection()
    first = created()
    ops = projection.apply(first)
    assert [(type(op).__name__, op.collection, op.key) for op in ops] == [
        ("Upsert", REGISTRY, "thread:t-1"),
        ("Upsert", BY_MEMBER, member_key("thread", "u1", False, "web", "t-1")),
        ("Upsert", BY_MEMBER, member_key("thread", "u2", False, "web", "t-1")),
    ]
    entry = ops[0]
    assert isinstance(entry, Upsert)
    assert entry.data == {
        "kind": "thread", "id": "t-1", "title": "Hi", "owner": "u1", "members": ["u1", "u2"], "surface_id": "web",
        "created_at": "2026-11-28T12:00:00Z", "created_by": "u1", "archived": False, "archived_at": None,
        "version": 1, "change": "thread.created", "position": 11, "updated_at": "2026-11-28T12:00:00Z",
        "updated_by": "u1",
    }  # fmt: skip
    state = state_of(first)
    removed, archived = replay(
        state, decide_changes(state, patch(remove_members=["u2"], archived=True), "owner")
    )
    assert [(type(op), op.key) for op in projection.apply(removed)[1:]] == [
        (Upsert, member_key("thread", "u1", False, "web", "t-1")),
        (Delete, member_key("thread", "u2", False, "web", "t-1")),
    ]
    assert [(type(op), op.key) for op in projection.apply(archived)[1:]] == [
        (Upsert, member_key("thread", "u1", True, "web", "t-1")),
        (Delete, member_key("thread", "u1", False, "web", "t-1")),  # moved to the archived ones
    ]
    assert projection.apply(archived)[0].data["archived_at"] == "2026-11-28T12:00:00Z"  # type: ignore[union-attr]
    assert projection.handles >= {"thread.created", "canvas.archived"}
    assert "thread.message_posted" not in projection.handles

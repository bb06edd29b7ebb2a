"""The realtime-registry methods of the Python client, once, against a live server: each request
reaches its route, each answer decodes into the client's own types, and a thread is followed
with the client's `follow` on its stream."""

from __future__ import annotations

from contextlib import aclosing

import httpx
import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import Thread, ThreadMessages
from tests.clients.conftest import PROJECT, SURFACE, TENANT, mint
from tests.http.conftest import LiveServer
from tests.provision import provision_sync


async def test_threads_members_messages_and_following(client: SpineClient, live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as http:
        provision_sync(http, tenant=TENANT, project=PROJECT, surface=SURFACE, user="u2")
    async with SpineClient(
        live.url, token=mint(3600, user="u2"), project_id=PROJECT, surface_id=SURFACE
    ) as u2:
        made = await client.create_thread(id="t-1", title="Launch", members=["u2"])
        assert (made.kind, made.id, made.version, made.changes) == ("thread", "t-1", 1, ["thread.created"])
        posted = await u2.post_message("t-1", {"text": "hi"}, metadata={"lang": "en"})
        again = await u2.post_message("t-1", {"text": "hi"}, id=posted.id)  # a retry: the original
        assert again == posted
        changed = await client.update_thread("t-1", title="Liftoff", add_members=["u3"], expected_version=1)
        assert (changed.version, changed.changes) == (4, ["thread.retitled", "thread.members_added"])
        with pytest.raises(SpineClientError) as stale:
            await client.update_thread("t-1", title="x", expected_version=1)
        assert (stale.value.status, stale.value.error_code) == (409, "realtime.version_conflict")
        with pytest.raises(SpineClientError) as not_owner:
            await u2.update_thread("t-1", archived=True)
        assert (not_owner.value.status, not_owner.value.error_code) == (403, "realtime.not_owner")
        entry = await u2.get_thread("t-1", min_position=changed.position)
        assert isinstance(entry, Thread)
        assert (entry.owner, entry.members, entry.title, entry.version) == (
            "u1",
            ["u1", "u2", "u3"],
            "Liftoff",
            4,
        )
        listed = await u2.list_threads(min_position=changed.position)
        assert [t.id for t in listed.items] == ["t-1"]
        assert listed.next is None
        messages = await client.list_messages("t-1", limit=10)
        assert isinstance(messages, ThreadMessages)
        assert [(m.version, m.author, m.content, m.metadata) for m in messages.messages] == [
            (2, "u2", {"text": "hi"}, {"lang": "en"})]  # fmt: skip
        followed = []
        async with aclosing(u2.follow(stream="thread:t-1", reconnect=False)) as events:
            async for event in events:
                followed.append(event.type)
                if len(followed) == 4:
                    break
        assert followed == [
            "thread.created",
            "thread.message_posted",
            "thread.retitled",
            "thread.members_added",
        ]
        canvas = await client.create_thread(kind="canvas", id="c-1", members=["u2"])
        archived = await client.update_thread("c-1", kind="canvas", archived=True)
        assert (canvas.kind, archived.changes) == ("canvas", ["canvas.archived"])
        mine = await u2.list_threads(kind="canvas", archived=True, min_position=archived.position)
        assert [(c.kind, c.id, c.archived) for c in mine.items] == [("canvas", "c-1", True)]
        with pytest.raises(SpineClientError) as closed:
            await u2.post_message("c-1", {"op": "draw"}, kind="canvas")
        assert (closed.value.status, closed.value.error_code) == (409, "realtime.archived")


def test_the_sync_client_has_the_same_methods(sync_client: SyncSpineClient) -> None:
    made = sync_client.create_thread(title="Solo")
    sync_client.post_message(made.id, "note to self")
    assert [m.content for m in sync_client.list_messages(made.id).messages] == ["note to self"]
    assert sync_client.get_thread(made.id, min_position=made.position).owner == "u1"
    with pytest.raises(SpineClientError) as refused:
        sync_client.update_thread(made.id, remove_members=["u1"])
    assert (refused.value.status, refused.value.error_code) == (409, "realtime.owner_not_removable")

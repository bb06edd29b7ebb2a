"""Every typed method of the Python client, once, against a live server: each request reaches its
route, and each answer decodes into the client's own types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from spine_client import SpineClient, SpineClientError
from spine_client.types import MemoryValue, Save, SaveVersion, SeoPage, Session, StreamTicket
from tests.clients.conftest import APP, PROJECT, SURFACE, TENANT, USER
from tests.http.conftest import LiveServer


async def test_the_event_log(client: SpineClient, live: LiveServer) -> None:
    appended = await client.append("task:42", [{"type": "task.created", "data": {"goal": "ship"}}])
    assert (appended.first_position, appended.last_position, appended.stream_version) == (1, 1, 1)
    stream = await client.read_stream("task:42")
    assert (stream.version, [e.data for e in stream.events]) == (1, [{"goal": "ship"}])
    page = await client.read(after=0, limit=10, stream="task:42", types=["task.created"])
    assert (page.next, page.head, page.events[0].meta.user_id) == (1, 1, USER)
    ticket = await client.create_stream_ticket(ttl_seconds=60)
    assert isinstance(ticket, StreamTicket)
    assert ticket.ticket
    assert timedelta(0) < ticket.expires_at - datetime.now(UTC) <= timedelta(seconds=61)
    async with httpx.AsyncClient(base_url=live.url) as browser_like:  # no header: the ticket only
        read = await browser_like.get("/v1/events", params={"ticket": ticket.ticket})
    assert [e["position"] for e in read.json()["events"]] == [1]


async def test_memory_sessions_blackboard_and_strategy_locks(client: SpineClient) -> None:
    written = await client.set_memory("goal", {"text": "ship"}, ttl_seconds=3600)
    assert written.key == "goal"
    value = await client.get_memory("goal", min_position=written.position)
    assert (value.found, value.value) == (True, {"text": "ship"})
    assert value.expires_at is not None
    deleted = await client.delete_memory("goal")
    assert deleted.status == "deleted"
    assert await client.get_memory("goal", min_position=deleted.position) == MemoryValue(
        key="goal", value=None, found=False, expires_at=None
    )

    added = await client.add_message("chat-1", "user", "hello", metadata={"lang": "en"})
    assert (added.session_id, added.index) == ("chat-1", 0)
    session = await client.get_session("chat-1", min_position=added.position)
    assert isinstance(session, Session)
    assert [(m.index, m.role, m.content, m.metadata) for m in session.messages] == [
        (0, "user", "hello", {"lang": "en"})
    ]

    entry = await client.write_entry("run-1", "plan", {"steps": 3})
    again = await client.write_entry("run-1", "plan", {"steps": 4}, expected_version=entry.version)
    with pytest.raises(SpineClientError) as stale:
        await client.write_entry("run-1", "plan", {"steps": 5}, expected_version=entry.version)
    assert (stale.value.status, stale.value.error_code) == (409, "blackboard.version_conflict")
    read = await client.get_entry("run-1", "plan", min_position=again.position)
    assert (read.value, read.version, read.written_by) == ({"steps": 4}, 2, USER)
    board = await client.get_board("run-1")
    assert [(e.key, e.version) for e in board.entries] == [("plan", 2)]

    taken = await client.take_snapshot("rebalance", {"holder": "planner"}, expected_version="no_stream")
    assert (taken.id, taken.version) == ("rebalance", 1)
    await client.take_snapshot("rebalance", {"holder": "executor"}, expected_version=1)
    latest = await client.get_latest_snapshot("rebalance", min_position=taken.position + 1)
    assert (latest.version, latest.state, latest.taken_by) == (2, {"holder": "executor"}, USER)
    history = await client.list_snapshots("rebalance", after=0, limit=1, min_position=taken.position + 1)
    assert ([s.version for s in history.snapshots], history.next) == ([1], 1)


async def test_budget_audit_and_analytics(client: SpineClient) -> None:
    limit = await client.set_budget_limit("tokens", "day", 1000, hard=True)
    assert (limit["unit"], limit["period"], limit["hard"]) == ("tokens", "day", True)
    usage = await client.record_usage(600, "tokens", cost_usd=0.01, model="m", run_id="run-1", id="u-1")
    assert (usage.amount, usage.id, usage.replayed) == (600, "u-1", False)
    assert usage.totals["day"]["amount"] == 600
    replayed = await client.record_usage(600, "tokens", id="u-1")
    assert (replayed.replayed, replayed.position) == (True, usage.position)
    with pytest.raises(SpineClientError) as over:
        await client.record_usage(600, "tokens")
    assert (over.value.status, over.value.error_code, over.value.problem["limit"]) == (
        402,
        "budget.exceeded",
        1000,
    )
    budget = await client.get_budget(unit="tokens", min_position=usage.position)
    assert [u["unit"] for u in budget["units"]] == ["tokens"]
    ledger = await client.get_budget_ledger(after=0, run_id="run-1", min_position=usage.position)
    assert [e["id"] for e in ledger["entries"]] == ["u-1"]

    record = await client.add_audit_record("task.reviewed", "task:42", details={"ok": True})
    records = await client.list_audit_records(action="task.reviewed", min_position=record.position)
    assert [(r["id"], r["actor"]) for r in records.records] == [(record.id, USER)]
    assert (await client.get_audit_record(record.id))["resource"] == "task:42"
    since = datetime.now(UTC) - timedelta(hours=1)
    assert len((await client.list_audit_records(start=since, limit=1000)).records) >= 1

    tracked = await client.track("page.view", "web", run_id="run-1", utm_source="mail", properties={"n": 1})
    batch = await client.track_batch(
        [{"name": "page.view", "platform": "ios"}, {"name": "signup", "platform": "ios"}]
    )
    assert (len(batch.ids), batch.position) == (2, max(batch.positions))
    events = await client.list_analytics_events(run_id="run-1", min_position=batch.position)
    assert [(e["id"], e["utm_source"], e["attribution"]["app_id"]) for e in events.events] == [
        (tracked.id, "mail", APP)
    ]
    counts = await client.count_analytics_events(name="page.view", min_position=batch.position)
    assert sum(c["count"] for c in counts.counts) == 2


async def test_seo_and_saves(client: SpineClient) -> None:
    saved = await client.put_seo("home", "Acme", description="rockets", open_graph={"og:title": "Acme"})
    page = await client.get_seo("home", min_position=saved.position)
    assert isinstance(page, SeoPage)
    assert (page.title, page.description, page.open_graph, page.app_id, page.surface_id) == (
        "Acme", "rockets", {"og:title": "Acme"}, APP, SURFACE,
    )  # fmt: skip
    listed = await client.list_seo_pages(min_position=saved.position)
    assert ([p["page"] for p in listed.pages], listed.next) == (["home"], None)
    removed = await client.delete_seo("home", expected_version=saved.version)
    assert (removed.status, removed.version) == ("deleted", 2)

    created = await client.create_save("flows", "Onboarding", {"nodes": []}, id="onboarding")
    assert (created.kind, created.id, created.version) == ("flows", "onboarding", 1)
    updated = await client.update_save(
        "flows", "onboarding", "Onboarding", {"nodes": ["hi"]}, expected_version=1
    )
    save = await client.get_save("flows", "onboarding", min_position=updated.position)
    assert isinstance(save, Save)
    assert (save.version, save.body, save.updated_by) == (2, {"nodes": ["hi"]}, USER)
    saves = await client.list_saves("flows")
    assert [(s.id, s.body) for s in saves.saves] == [("onboarding", None)]  # listings carry no body
    deleted = await client.delete_save("flows", "onboarding", expected_version=2)
    assert (deleted.deleted, deleted.version) == (True, 3)
    versions = await client.list_save_versions("flows", "onboarding", min_position=deleted.position)
    assert [(v.version, v.change, v.deleted) for v in versions.versions] == [
        (1, "created", False), (2, "updated", False), (3, "deleted", True),
    ]  # fmt: skip
    first = await client.get_save_version("flows", "onboarding", 1)
    assert isinstance(first, SaveVersion)
    assert first.body == {"nodes": []}


async def test_the_control_plane_and_operators(
    live: LiveServer, admin_token: str, client: SpineClient
) -> None:
    await client.get_memory("anything")  # a read starts the project's memory view
    async with SpineClient(live.url) as anonymous:
        again = await anonymous.bootstrap("test-bootstrap-key")
    assert (again.tenant_id, again.user_id) == ("t_system", "admin")
    async with SpineClient(live.url, token=admin_token) as admin:
        assert {m["name"] for m in await admin.list_modes()} >= {"saas", "enterprise", "lab"}
        assert (await admin.create_tenant("t2", "Two", mode="lab"))["mode"] == "lab"
        await admin.create_project("t2", "p2", "P2")
        await admin.create_surface("t2", "web", "Web")
        await admin.create_app("t2", "a2", "A2")
        put = await admin.put_app("t2", "a3", "A3", origins=["https://app.example"])
        assert put["origins"] == ["https://app.example"]
        assert (await admin.set_member("t2", "bob", "member"))["role"] == "member"
        token = await admin.mint_token("t2", "bob", ttl_seconds=120)
        assert (token.tenant_id, token.user_id) == ("t2", "bob")
        assert token.expires_at - datetime.now(UTC) <= timedelta(seconds=121)
        tenant = await admin.get_tenant("t2")
        assert ([p["project_id"] for p in tenant["projects"]], tenant["members"]) == (
            ["p2"],
            {"bob": "member"},
        )

        route = await admin.set_route("event_spine", "t2", "dev", "sqlite", config={"path": "t2.db"},
                                      switch_rationale="own file")  # fmt: skip
        assert (route["backend_type"], route["switched"]) == ("sqlite", False)
        assert [r["tenant_id"] for r in (await admin.list_routes(tenant_id="t2"))["routes"]] == ["t2"]
        diagnostics = await admin.diagnostics(tenant_id="t2")
        assert {c["status"] for c in diagnostics["checks"] if c["resource_kind"] == "event_spine"} == {"ok"}
        assert (await admin.delete_route("event_spine", "t2", "dev", rationale="done"))["status"] == "deleted"
        assert [c["action"] for c in (await admin.route_history(tenant_id="t2"))["changes"]] == [
            "set",
            "deleted",
        ]
        views = await admin.projections(tenant_id=TENANT)
        assert {v["name"] for v in views["projections"]} >= {"memory"}
        rebuilt = await admin.rebuild_projection("memory", tenant_id=TENANT, project_id=PROJECT, wait=True)
        assert [v["rebuild"]["state"] for v in rebuilt["projections"]] == ["swapped"]
        taken = await admin.snapshot_projection("memory", tenant_id=TENANT, project_id=PROJECT, wait=True)
        assert [s["state"] for s in taken["snapshots"]] == ["taken"]
        rebuilt = await admin.rebuild_projection("memory", tenant_id=TENANT, project_id=PROJECT, wait=True,
                                                 from_="start")  # fmt: skip
        assert [v["rebuild"]["from"] for v in rebuilt["projections"]] == ["start"]

"""The routing registry and the control plane on the system spine: one suite, run against every adapter.

Both are events in `Partition.system(env)`, written by `ControlPlaneService` and projected in
memory by `ControlPlaneProjector`; whatever backend holds the system spine, every process that
reads it must come to the same routes and records, and racing writers must not both win.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

from adapters.cosmos.spine import CosmosSpine
from adapters.dynamodb.spine import DynamoDBSpine
from adapters.firestore.spine import FirestoreSpine
from adapters.local_notifier import LocalNotifier
from adapters.memory.spine import MemorySpine
from adapters.sqlite.spine import SQLiteSpine
from app.usecases.control_plane import ControlPlaneService, system_meta
from domain.append import AppendRequest
from domain.control_plane import (
    ControlPlane,
    Decision,
    MemberSet,
    ProjectCreated,
    TenantCreated,
    decide_bootstrap,
    decide_member,
    decide_project,
    decide_tenant,
)
from domain.errors import AlreadyExists, MissingRoute, VersionConflict
from domain.events import NewEvent
from domain.partition import SYSTEM_TENANT, Partition
from domain.ports import EventSpine
from domain.routing import (
    WILDCARD,
    Route,
    RouteDeleted,
    decide_route,
    decide_route_delete,
    resolve,
    route_stream,
)
from projections.control_plane import ControlPlaneProjector
from tests.peers import cosmos, dynamodb, firestore
from tests.unit.test_routing import route

SYS = Partition.system("dev")
META = msgspec.structs.replace(system_meta("dev"), user_id="root")
FIRESTORE = {"backend_type": "firestore", "config": {"project": "p"}}
COSMOS = {"backend_type": "cosmos", "config": {"endpoint": "e", "database": "d", "key": "secret://env/K"}}


@asynccontextmanager
async def another_process(spine: EventSpine, notifier: LocalNotifier) -> AsyncIterator[EventSpine]:
    """A second adapter on the same storage, as another process (or a restart) opens it.

    The notifier stands for the shared one (Redis) of a deployment; the memory spine's only storage
    is the object itself.
    """
    other: SQLiteSpine | DynamoDBSpine | CosmosSpine | FirestoreSpine
    if isinstance(spine, MemorySpine):
        yield spine
        return
    if isinstance(spine, SQLiteSpine):
        other = SQLiteSpine(spine.path, notifier=notifier)
    elif isinstance(spine, DynamoDBSpine):
        endpoint = await anyio.to_thread.run_sync(dynamodb.endpoint)
        other = DynamoDBSpine(spine._table.name, region=dynamodb.REGION, endpoint_url=endpoint,
                              session=dynamodb._session(), notifier=notifier)  # fmt: skip
    elif isinstance(spine, CosmosSpine):
        other = CosmosSpine(endpoint=cosmos.endpoint(), database=cosmos.DATABASE, key=cosmos.KEY,
                            container=spine._store.name, item_bytes=spine._item_bytes, notifier=notifier)  # fmt: skip
    elif isinstance(spine, FirestoreSpine):
        other = FirestoreSpine(project=spine.project, database=spine.database,
                               emulator_host=firestore.emulator_host(), notifier=notifier)  # fmt: skip
    else:
        pytest.fail(f"teach another_process() to open a second {type(spine).__name__} on its storage")
    async with other:
        yield other


def service_on(spine: EventSpine, notifier: LocalNotifier) -> ControlPlaneService:
    return ControlPlaneService(spine, ControlPlaneProjector(spine, notifier, SYS))


async def write(
    control: ControlPlaneService, plan: Callable[[ControlPlane, Any], Decision], record: Any
) -> int:
    """What the control-plane endpoints do: plan one record on the caught-up state, append it."""
    return await control.execute(lambda state: [plan(state, record)], META)


async def seed(control: ControlPlaneService) -> None:
    """`t_system`, the modes and an admin; tenant t1 (saas) with project p1; tenant t2."""
    await control.execute(lambda state: decide_bootstrap(state, "root"), META)
    await write(control, decide_tenant, TenantCreated(tenant_id="t1", name="T1"))
    await write(control, decide_tenant, TenantCreated(tenant_id="t2", name="T2"))
    await write(control, decide_project, ProjectCreated(tenant_id="t1", project_id="p1", name="P1"))


async def set_route(control: ControlPlaneService, new: Route) -> int:
    """What `PUT /v1/routes` does."""
    mode = None if new.tenant_id == WILDCARD else control.state.tenant(new.tenant_id).mode

    def planned(_: ControlPlane) -> list[Decision]:
        return [decide_route(control.projector.registry, new, mode=mode, now=datetime.now(UTC))[0]]

    return await control.execute(planned, META)


async def delete_route(
    control: ControlPlaneService, tenant: str, project: str, why: str | None = None
) -> int:
    gone = RouteDeleted(resource_kind="event_spine", tenant_id=tenant, env="dev", project_id=project, rationale=why)  # fmt: skip
    return await control.execute(lambda _: [decide_route_delete(control.projector.registry, gone)], META)


def table(name: str) -> dict[str, Any]:
    return {"config": {"table": name, "region": "eu-west-1"}}


def table_for(control: ControlPlaneService, tenant: str, project: str) -> str:
    resolution = resolve(control.projector.registry, "event_spine", tenant, "dev", project, "saas")
    assert resolution.route is not None
    return str(resolution.route.config["table"])


def snapshot(projector: ControlPlaneProjector) -> tuple[object, ...]:
    s = projector.state
    return (s.position, s.modes, s.tenants, s.projects, s.surfaces, s.apps, s.members,
            projector.registry.routes, projector.registry.history)  # fmt: skip


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not condition():
            await anyio.lowlevel.checkpoint()


async def test_resolution_goes_project_then_tenant_then_default_and_a_delete_falls_back(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    control = service_on(spine, notifier)
    await seed(control)
    with pytest.raises(MissingRoute):
        table_for(control, "t1", "p1")
    await set_route(control, route(tenant="*", **table("default")))
    await set_route(control, route(**table("tenant")))
    await set_route(control, route(project="p1", **table("project")))
    assert [table_for(control, t, p) for t, p in [("t1", "p1"), ("t1", "p2"), ("t2", "p1")]] == [
        "project", "tenant", "default"]  # fmt: skip

    await delete_route(control, "t1", "p1")
    assert (table_for(control, "t1", "p1"), table_for(control, "t1", "p2")) == ("tenant", "tenant")
    await delete_route(control, "t1", "*")
    assert table_for(control, "t1", "p1") == "default"
    with pytest.raises(MissingRoute):
        resolve(control.projector.registry, "memory_store", "t1", "dev", "p1", "saas")


async def test_switching_backends_keeps_the_route_history_in_log_order(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    control = service_on(spine, notifier)
    await seed(control)
    await set_route(control, route())
    await set_route(control, route(**FIRESTORE, switch_rationale="latency"))
    await set_route(control, route(**FIRESTORE, tier="gold"))  # a change that is no switch
    await set_route(control, route(**COSMOS, switch_rationale="cost"))
    assert control.projector.registry.routes[route().key].previous_backend_type == "firestore"
    await delete_route(control, "t1", "*", why="retired")

    history = [c for c in control.projector.registry.history if c.key == route().key]
    assert [
        (c.action, c.route and c.route.backend_type, c.route and c.route.previous_backend_type, c.rationale)
        for c in history
    ] == [
        ("set", "dynamodb", None, None),
        ("set", "firestore", "dynamodb", "latency"),
        ("set", "firestore", "dynamodb", None),
        ("set", "cosmos", "firestore", "cost"),
        ("deleted", None, None, "retired"),
    ]
    assert {c.actor for c in history} == {"root"}
    events, version = await spine.read_stream(SYS, route_stream(*route().key))
    assert version == 5
    positions = [e.position for e in events]
    assert [c.position for c in history] == positions == sorted(set(positions))


async def test_another_process_and_a_restart_project_the_same_state(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    one = service_on(spine, notifier)
    async with another_process(spine, notifier) as other_spine:
        two = service_on(other_spine, notifier)
        await seed(one)
        await set_route(two, route(tenant="*", **table("default")))
        await two.projector.catch_up()  # from here on, its catch-ups are incremental
        await spine.append(SYS, AppendRequest(stream="notes", events=[NewEvent(type="note")], meta=META))
        crowd = [NewEvent(type="member.set", data={"tenant_id": "t2", "user_id": f"u{i}", "role": "member"})
                 for i in range(1100)]  # fmt: skip
        await spine.append(SYS, AppendRequest(stream="member:t2:crowd", events=crowd, meta=META))  # > a page
        await set_route(one, route(project="p1"))
        await write(two, decide_member, MemberSet(tenant_id="t1", user_id="ann", role="admin"))
        await set_route(one, route(project="p1", **FIRESTORE, switch_rationale="latency"))
        await write(two, decide_tenant, TenantCreated(tenant_id="t3", name="T3", mode="lab"))
        await delete_route(one, "*", "*")

        head = await spine.head(SYS)
        assert await one.projector.catch_up() == await two.projector.catch_up() == head
        assert snapshot(two.projector) == snapshot(one.projector)
    state, registry = one.state, one.projector.registry
    assert (sorted(state.tenants), state.members_of("t1"), state.tenants["t3"].mode) == (
        ["t1", "t2", "t3", SYSTEM_TENANT], {"ann": "admin"}, "lab")  # fmt: skip
    assert len(state.members_of("t2")) == 1100
    assert [r.backend_type for r in registry.routes.values()] == ["firestore"]
    assert [c.action for c in registry.history] == ["set", "set", "set", "deleted"]

    async with another_process(spine, notifier) as restarted:
        fresh = ControlPlaneProjector(restarted, notifier, SYS)
        assert await fresh.catch_up() == head
        assert snapshot(fresh) == snapshot(one.projector)


async def test_racing_creations_of_one_tenant_let_exactly_one_win(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    async with another_process(spine, notifier) as other_spine:
        services = [service_on(s, notifier) for s in (spine, other_spine, spine, other_spine)]
        await seed(services[0])
        outcomes: dict[str, str] = {}

        async def create(name: str, control: ControlPlaneService) -> None:
            try:
                await write(control, decide_tenant, TenantCreated(tenant_id="acme", name=name))
                outcomes[name] = "won"
            except AlreadyExists:
                outcomes[name] = "already exists"

        async with anyio.create_task_group() as tg:
            for i, control in enumerate(services):
                tg.start_soon(create, f"racer-{i}", control)
        assert sorted(outcomes.values()) == ["already exists"] * 3 + ["won"]
        [winner] = [name for name, outcome in outcomes.items() if outcome == "won"]
        for control in services:
            await control.projector.catch_up()
            assert control.state.tenants["acme"].name == winner
        assert (await spine.read_stream(SYS, "tenant:acme"))[1] == 1


async def test_a_write_planned_on_a_stale_view_conflicts_and_is_planned_again(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    async with another_process(spine, notifier) as other_spine:
        first, second = service_on(spine, notifier), service_on(other_spine, notifier)
        await seed(first)
        stale = ControlPlaneProjector(other_spine, notifier, SYS)
        await stale.catch_up()  # what `second` read before `first` created acme
        await write(first, decide_tenant, TenantCreated(tenant_id="acme", name="first"))
        head = await spine.head(SYS)
        views: list[ControlPlane] = []

        def stale_then_fresh(state: ControlPlane) -> list[Decision]:
            views.append(state if views else stale.state)
            return [decide_tenant(views[-1], TenantCreated(tenant_id="acme", name="second"))]

        with pytest.raises(AlreadyExists):
            await second.execute(stale_then_fresh, META)
        assert views == [stale.state, second.state]  # the conflict made it catch up and plan again
        late = TenantCreated(tenant_id="acme", name="late")
        with pytest.raises(VersionConflict):  # a view that stays stale: the conflict is the answer
            await second.execute(lambda _: [decide_tenant(stale.state, late)], META)
        assert await spine.head(SYS) == head
        assert second.state.tenants["acme"].name == "first"


@pytest.mark.parametrize("wakeup", ["notified", "polled"])
async def test_follow_picks_up_writes_made_through_another_service(
    spine: EventSpine, notifier: LocalNotifier, wakeup: str
) -> None:
    # notified: it polls once an hour, so only the writer's notification can wake it in time;
    # polled: nothing is ever published on its notifier, so only its poll can.
    follower = ControlPlaneProjector(spine, notifier if wakeup == "notified" else LocalNotifier(), SYS)
    poll_seconds = 3600.0 if wakeup == "notified" else 0.05
    async with another_process(spine, notifier) as other_spine:
        writer = service_on(other_spine, notifier)
        await seed(writer)
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower.follow, poll_seconds)
            head = await spine.head(SYS)
            await until(lambda: follower.state.position >= head)  # caught up: now it waits
            await set_route(writer, route(project="p1"))
            await until(lambda: follower.registry.lookup("event_spine", "t1", "dev", "p1") is not None)
            await write(writer, decide_tenant, TenantCreated(tenant_id="t9", name="T9"))
            await until(lambda: "t9" in follower.state.tenants)
            tg.cancel_scope.cancel()
    assert snapshot(follower) == snapshot(writer.projector)


async def test_a_route_change_planned_on_a_registry_that_missed_a_switch_is_planned_again(
    spine: EventSpine, notifier: LocalNotifier
) -> None:
    """Process B plans a tier change on the route it knows (DynamoDB) while A switches it to
    Firestore: B's change cannot land as planned (it would undo the switch unrecorded); planned
    again, it is itself a switch back, with the previous backend and history to show it."""
    one = service_on(spine, notifier)
    await seed(one)
    await set_route(one, route())  # DynamoDB
    async with another_process(spine, notifier) as other:
        two = service_on(other, notifier)
        await two.projector.catch_up()
        stale, _ = decide_route(
            two.projector.registry, route(tier="gold"), mode="saas", now=datetime.now(UTC)
        )
        await set_route(one, route(**FIRESTORE, switch_rationale="latency"))
        request = AppendRequest(stream=stale.stream, events=[stale.event], expected_version=stale.expected_version,
                                meta=META)  # fmt: skip
        with pytest.raises(VersionConflict):
            await other.append(SYS, request)
        await set_route(two, route(tier="gold"))
        key = ("event_spine", "t1", "dev", "*")
        await one.projector.catch_up()
        for registry in (one.projector.registry, two.projector.registry):
            assert (registry.routes[key].backend_type, registry.routes[key].previous_backend_type) == (
                "dynamodb",
                "firestore",
            )
            backends = [
                change.route.backend_type for change in registry.history if change.route and change.key == key
            ]
            assert backends == ["dynamodb", "firestore", "dynamodb"]

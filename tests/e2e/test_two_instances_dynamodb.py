"""Two stateless `spine serve` instances sharing one DynamoDB-backed log and the Redis notifier.

The system spine (control plane, routes) lives in one DynamoDB table and the saas tenant's log and
memory view in another, both routed explicitly, so the instances share nothing on local disk.
Polling is set far beyond every deadline here: an event appended on one instance reaches the
other's followers and projection runners through Redis, or the test fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, suppress
from pathlib import Path
from typing import Any

import aioboto3  # type: ignore[import-untyped]
import anyio
import httpx
import pytest

from domain.backend_url import Backend
from domain.events import Event
from spine_client import SpineClient
from tests.e2e.test_kill_restart import SpineServer, assert_gapless, read_all, summary
from tests.peers import dynamodb
from tests.provision import provision

pytestmark = pytest.mark.e2e

TENANT, PROJECT = "t1", "p1"
BOOTSTRAP_KEY = "two-instances-bootstrap-key"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # the peer takes any
NO_POLLING = {"SPINE_POLL_SECONDS": "60", "SPINE_HEARTBEAT_SECONDS": "60"}
Pair = tuple[SpineServer, SpineServer]


def table_config(endpoint: str, table: str) -> dict[str, Any]:
    return {"table": table, "region": dynamodb.REGION, "endpoint_url": endpoint, "create_table": True}


@pytest.fixture
async def pair(tmp_path: Path, redis_url: str) -> AsyncIterator[Pair]:
    """Instances `a` and `b` of one deployment, each with its own data dir and instance id, and a
    saas tenant routed to DynamoDB whose member's headers both carry."""
    endpoint = await anyio.to_thread.run_sync(dynamodb.endpoint)
    system, data = (f"spine-e2e-{uuid.uuid4().hex[:12]}-{part}" for part in ("system", "data"))
    env = {
        **CREDENTIALS,
        **NO_POLLING,
        "SPINE_SYSTEM_URL": Backend(backend_type="dynamodb", config=table_config(endpoint, system)).url,
        "SPINE_REDIS_URL": redis_url,
        "SPINE_BOOTSTRAP_KEY": BOOTSTRAP_KEY,
        "SPINE_TOKEN_KEY": uuid.uuid4().hex,  # a token minted by one instance verifies on the other
    }
    a, b = (SpineServer(tmp_path / name, tmp_path, env={**env, "SPINE_INSTANCE_ID": name}) for name in "ab")
    try:
        async with anyio.create_task_group() as tg:  # both create the system table if it is missing
            tg.start_soon(a.start)
            tg.start_soon(b.start)
        a.headers = b.headers = await provision_routed(a, table_config(endpoint, data))
        yield a, b
    finally:
        with anyio.CancelScope(shield=True):
            for server in (a, b):
                await server.stop()
            session = aioboto3.Session(
                aws_access_key_id="local", aws_secret_access_key="local", region_name=dynamodb.REGION
            )
            async with session.client("dynamodb", endpoint_url=endpoint) as client:
                for table in (system, data):
                    with suppress(client.exceptions.ResourceNotFoundException):
                        await client.delete_table(TableName=table)


async def provision_routed(server: SpineServer, config: dict[str, Any]) -> dict[str, str]:
    """A saas tenant whose log, memory view and data keys (memory values are personal: sealed
    under keys of the key store) are routed to `config`, routed before its first member exists,
    so an instance that knows the member knows the routes."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        admin = await admin_headers(http)
        tenant = {"tenant_id": TENANT, "name": TENANT, "mode": "saas"}
        assert (await http.post("/v1/tenants", json=tenant, headers=admin)).status_code == 201
        for kind, project in (("event_spine", PROJECT), ("memory_store", PROJECT), ("key_store", "*")):
            route = {"resource_kind": kind, "tenant_id": TENANT, "env": "dev", "project_id": project,
                     "backend_type": "dynamodb", "config": config}  # fmt: skip
            answer = await http.put("/v1/routes", json=route, headers=admin)
            assert answer.status_code == 200, answer.text
        # the tenant exists (409), then its project, surface, app, member and token
        return await provision(http, TENANT, PROJECT, mode="saas", bootstrap_key=BOOTSTRAP_KEY)


async def admin_headers(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def memory_leaders(server: SpineServer) -> list[bool]:
    """`leading` of each memory view this instance runs (only the one partition here)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.get(
            "/v1/projections", params={"name": "memory"}, headers=await admin_headers(http)
        )
        assert answer.status_code == 200, answer.text
        return [view["leading"] for view in answer.json()["projections"]]


async def read_memory(server: SpineServer, keys: list[str], min_position: int) -> dict[str, Any]:
    """The memory view of `server` once it reflects `min_position`, asking again while it lags."""
    headers = {**server.headers, "X-Spine-Min-Position": str(min_position)}
    values: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for key in keys:
            while True:  # each ask waits (read_wait_seconds) for the view: this loop never spins
                answer = await http.get(f"/v1/memory/{key}", headers=headers)
                if answer.status_code != 503 or answer.json()["error_code"] != "projection.lagging":
                    break
            assert answer.status_code == 200, f"{answer.text}\n{server.log()}"
            values[key] = answer.json()["value"]
    return values


async def test_a_follower_on_b_gets_every_event_appended_on_a_in_order_once(pair: Pair) -> None:
    a, b = pair
    acked: dict[int, tuple[str | None, str]] = {}  # position -> (client id, mark) as acknowledged
    followed: list[Event] = []
    live = anyio.Event()

    async def follower() -> None:
        async with b.client() as client, aclosing(client.follow(reconnect=False)) as events:
            async for event in events:
                followed.append(event)
                live.set()
                if event.id == "last":
                    return

    async def writer(server: SpineServer, name: str, appends: int) -> None:
        async with server.client() as client:
            for i in range(appends):
                marks = [f"{name}.{i}.{j}" for j in range(3 if i % 5 == 0 else 1)]
                batch = [{"type": "tick", "data": {"mark": m}, **({"id": m} if i % 2 else {})} for m in marks]
                await append(client, f"s-{name}", batch, acked)

    with anyio.fail_after(45):
        async with a.client() as on_a, b.client() as on_b, anyio.create_task_group() as tg:
            tg.start_soon(follower)
            await append(on_b, "s-open", [{"id": "open", "type": "tick", "data": {"mark": "open"}}], acked)
            await live.wait()  # the follower is live before the writers start
            async with anyio.create_task_group() as writers:
                for w in range(4):
                    writers.start_soon(writer, a, f"a{w}", 50)
                for w in range(2):
                    writers.start_soon(writer, b, f"b{w}", 10)
            # B's own appends wake its followers locally; this last one can only come through Redis.
            await append(on_a, "s-last", [{"id": "last", "type": "tick", "data": {"mark": "last"}}], acked)

    assert sorted(acked) == list(range(1, len(acked) + 1))
    assert [e.position for e in followed] == sorted(acked)
    assert [(e.id if acked[e.position][0] else None, e.data["mark"]) for e in followed] == [
        acked[p] for p in sorted(acked)
    ]
    assert len({e.id for e in followed}) == len(followed)

    # A second follower on B resumes from the middle with Last-Event-ID: exactly the tail, then live.
    middle = len(followed) // 2
    resumed: list[Event] = []
    with anyio.fail_after(20):
        async with (
            b.client() as on_b,
            a.client() as on_a,
            aclosing(on_b.follow(after=middle, reconnect=False)) as events,
        ):
            async for event in events:
                resumed.append(event)
                if event.id == "last":  # the tail is all there: anything more would come before this
                    await on_a.append("s-last", [{"id": "after", "type": "tick", "data": {}}])
                if event.id == "after":
                    break
    assert summary(resumed) == [*summary(followed[middle:]), ("after", len(followed) + 1)]


async def append(
    client: SpineClient, stream: str, batch: list[dict[str, Any]], acked: dict[int, tuple[str | None, str]]
) -> None:
    """Append `batch`; record the (client id, mark) of each acknowledged position in `acked`."""
    result = await client.append(stream, batch)
    positions = range(result.first_position, result.last_position + 1)
    assert len(positions) == len(batch)
    for position, event in zip(positions, batch, strict=True):
        assert position not in acked, "two appends were acknowledged at one position"
        acked[position] = (event.get("id"), event["data"]["mark"])


async def test_memory_written_through_both_instances_is_the_same_view_on_both(pair: Pair) -> None:
    a, b = pair
    keys = [f"k{i}" for i in range(5)]
    model: dict[str, tuple[int, str]] = {}  # key -> (position, value) of its last acknowledged write

    async def writer(w: int, http: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
        for i in range(25):
            key, value = keys[(w * 3 + i) % len(keys)], f"w{w}.{i}"
            answer = await http[(w + i) % 2].put(
                f"/v1/memory/{key}", json={"value": value}, headers=a.headers
            )
            assert answer.status_code == 200, answer.text
            position = int(answer.headers["x-spine-position"])
            if position > model.get(key, (0, ""))[0]:
                model[key] = (position, value)

    with anyio.fail_after(45):
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
            anyio.create_task_group() as tg,
        ):
            for w in range(4):  # concurrent writers, each alternating between the instances
                tg.start_soon(writer, w, (on_a, on_b))
        head = max(position for position, _ in model.values())
        expected = {key: value for key, (_, value) in model.items()}
        assert await read_memory(a, keys, head) == expected
        assert await read_memory(b, keys, head) == expected
        assert sorted([*await memory_leaders(a), *await memory_leaders(b)]) == [False, True]


async def test_killing_one_instance_loses_no_acknowledged_event(pair: Pair) -> None:
    a, b = pair
    acked: dict[str, int] = {}  # event id -> position
    model: dict[str, int] = {"warm": 0}  # memory key -> its writer's last acknowledged value
    memory_acks, failovers = 1, []  # failovers: (writer, whether its lost write was to memory)
    some_acked, killed = anyio.Event(), anyio.Event()

    async def write(http: httpx.AsyncClient, name: str, i: int) -> None:
        """Write `i` of writer `name`: a memory key of its own, or a batch of ticks with client ids."""
        nonlocal memory_acks
        if i % 4 == 3:
            answer = await http.put(f"/v1/memory/{name}", json={"value": i}, headers=a.headers)
            assert answer.status_code == 200, answer.text
            model[name], memory_acks = i, memory_acks + 1
            return
        ids = [f"{name}.{i}.{j}" for j in range(1 + i % 2)]
        batch = {"stream": f"s-{name}", "events": [{"id": x, "type": "tick", "data": {}} for x in ids]}
        answer = await http.post("/v1/events", json=batch, headers=a.headers)
        assert answer.status_code == 201, answer.text
        first, last = answer.json()["first_position"], answer.json()["last_position"]
        acked.update(zip(ids, range(first, last + 1), strict=True))

    async def writer(name: str, on: list[httpx.AsyncClient]) -> None:
        for i in range(40):
            try:
                await write(on[0], name, i)
            except httpx.TransportError:  # A is gone: the same write again on B (same ids)
                assert len(on) == 2, f"B failed\n{b.log()}"
                failovers.append((name, i % 4 == 3))
                on.pop(0)
                await write(on[0], name, i)
            if len(acked) >= 40:
                some_acked.set()
            if name.startswith("b") and i == 20:
                await killed.wait()  # B's writers go on writing after the kill

    with anyio.fail_after(60):
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
        ):
            # A alone runs the memory view so far: once it reflects this write, A holds the lease.
            warm = await on_a.put("/v1/memory/warm", json={"value": 0}, headers=a.headers)
            assert await read_memory(a, ["warm"], int(warm.headers["x-spine-position"])) == {"warm": 0}
            assert await memory_leaders(a) == [True]  # so B, once it starts the view, follows A
            async with anyio.create_task_group() as tg:
                for w in range(2):
                    tg.start_soon(writer, f"a{w}", [on_a, on_b])
                    tg.start_soon(writer, f"b{w}", [on_b])
                await some_acked.wait()
                await a.kill()  # the leader goes, mid-write
                killed.set()

        assert sorted(name for name, _ in failovers) == ["a0", "a1"], "A's writers were cut off mid-way"
        async with b.client() as client:
            log = await read_all(client)
        assert_gapless(log)
        assert {e.id: e.position for e in log if e.type == "tick"} == acked
        # A lost memory write may be stored as well as its retry: nothing else is unacknowledged.
        lost = sum(memory for _, memory in failovers)
        assert memory_acks <= len([e for e in log if e.type == "memory.set"]) <= memory_acks + lost
        # B takes the memory view over once A's lease has lapsed, then reflects the whole log.
        assert await read_memory(b, sorted(model), log[-1].position) == model
        assert await memory_leaders(b) == [True]

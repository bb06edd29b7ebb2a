"""Projections across a SIGKILL: a real `spine serve` is killed while writers and runners are busy,
restarted on the same data dir, and every view is then exactly what the acknowledged writes say.

Writers drive every product view at once over HTTP: budget usages with ids (a unit without a
limit, and one whose hard total limit is reached during the run), compare-and-set increments of a
blackboard counter, memory sets and session messages; a reader keeps asking each view for the
newest acknowledged position. Once enough is acknowledged (the kill moment is chosen by progress,
never by a clock) the process is SIGKILLed with requests and projection batches in flight.

While it is down, the view store's checkpoints are read straight from `views.db`. After the
restart, each write whose answer was lost is resolved against the log and retried (a budget
usage with the same `id`), and the views are read with `X-Spine-Min-Position`: nothing is
missing, nothing is counted twice, and the runners went on from their checkpoints (generation 0,
and exactly the batches that the events after each checkpoint need, not a replay from 0).
"""

from __future__ import annotations

import itertools
import math
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from domain.budget import usage_event_id
from domain.events import Event
from domain.partition import Partition
from projections.catalog import VIEWS
from projections.runtime import PAGE
from tests.e2e.test_kill_restart import PROJECT, TENANT, SpineServer, assert_gapless, read_all

pytestmark = pytest.mark.e2e

PARTITION = Partition(tenant_id=TENANT, env="dev", project_id=PROJECT)
KILL_AFTER = 1200  # acknowledged writes before the kill, so that every view is past a page
WRITERS = 3  # concurrent writers of each kind
UNLIMITED, LIMITED, LIMIT = "calls", "tokens", 150
RUN, COUNTER = "run-1", "counter"
COUNTER_STREAM = f"blackboard:{RUN}:{COUNTER}"
SHARED_KEY, SHARED_SESSION = "shared", "chat-shared"
USER = "u1"  # the member `provision` makes; memory keys and sessions are the user's
# One read per view; the reader asks each for the newest acknowledged position.
VIEW_READS = {
    "memory": f"/v1/memory/{SHARED_KEY}",
    "sessions": f"/v1/sessions/{SHARED_SESSION}",
    "blackboard": f"/v1/runs/{RUN}/blackboard",
    "budget": "/v1/budget",
    "audit": "/v1/audit?limit=1",
}


@dataclass
class Run:
    """What the clients know: every acknowledged write, every refusal, every answer lost."""

    writes: dict[int, tuple[str, str]] = field(default_factory=dict)  # position -> (type, stream)
    usages: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)  # id -> (body, position)
    refused: set[str] = field(default_factory=set)  # usage ids answered 402
    increments: dict[str, int] = field(default_factory=dict)  # CAS tag -> the version it wrote
    memory: list[tuple[int, str, Any]] = field(default_factory=list)  # (position, key, value)
    messages: list[tuple[str, int, str, int]] = field(default_factory=list)  # (session, index, content, pos)
    lost_usages: list[dict[str, Any]] = field(default_factory=list)
    lost_increments: list[str] = field(default_factory=list)
    lost_memory: list[tuple[str, Any]] = field(default_factory=list)
    lost_messages: list[tuple[str, str]] = field(default_factory=list)
    reflected: dict[str, int] = field(default_factory=dict)  # view -> a position it answered at
    enough: anyio.Event = field(default_factory=anyio.Event)

    @property
    def high(self) -> int:
        return max(self.writes, default=0)

    def acknowledge(self, position: int, event_type: str, stream: str) -> None:
        assert self.writes.setdefault(position, (event_type, stream)) == (event_type, stream)
        self.check()

    def check(self) -> None:
        """The kill moment: enough acknowledged, the hard limit reached, and every view has
        answered a read-your-writes read past its first page (so each has a checkpoint > PAGE)."""
        if (
            len(self.writes) >= KILL_AFTER
            and self.refused
            and all(self.reflected.get(name, 0) > PAGE for name in VIEW_READS)
        ):
            self.enough.set()


def problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (answer.status_code, answer.json().get("error_code")) == (status, code), answer.text
    body: dict[str, Any] = answer.json()
    return body


# Writers: each loops until its request gets no answer (the kill), and notes that write as lost.


async def use_budget(http: httpx.AsyncClient, run: Run, unit: str, writer: int) -> None:
    for i in itertools.count():
        amount = 1 if unit == LIMITED else 1 + i % 3  # 1 each under the limit, so that it is reached exactly
        body = {"amount": amount, "unit": unit, "id": f"{unit}-{writer}-{i}", "run_id": RUN}
        try:
            answer = await http.post("/v1/budget/usage", json=body)
        except httpx.TransportError:
            run.lost_usages.append(body)
            return
        record_usage(run, body, answer)


def record_usage(run: Run, body: dict[str, Any], answer: httpx.Response) -> None:
    if answer.status_code == 402:
        assert body["unit"] == LIMITED, answer.text
        problem(answer, 402, "budget.exceeded")
        run.refused.add(body["id"])
        run.check()
        return
    assert answer.status_code == 201, answer.text
    position = answer.json()["position"]
    run.usages[body["id"]] = (body, position)
    run.acknowledge(position, "budget.usage_recorded", f"budget:{body['unit']}")


async def increment(http: httpx.AsyncClient, run: Run, writer: int) -> None:
    """Compare-and-set increments of one counter by several writers: value n is written at version n."""
    version = 0
    for i in itertools.count():
        tag = f"cas-{writer}-{i}"
        try:
            version = await cas(http, run, tag, version)
        except httpx.TransportError:
            run.lost_increments.append(tag)
            return


async def cas(http: httpx.AsyncClient, run: Run, tag: str, version: int) -> int:
    """One attempt: the version now known (the one written, or the one that won)."""
    body = {"value": {"n": version + 1, "tag": tag}, "expected_version": version or "no_stream"}
    answer = await http.put(f"/v1/runs/{RUN}/blackboard/{COUNTER}", json=body)
    if answer.status_code == 409:
        current: int = problem(answer, 409, "blackboard.version_conflict")["current_version"]
        return current
    assert answer.status_code == 200, answer.text
    written = answer.json()
    assert written["version"] == version + 1
    run.increments[tag] = written["version"]
    run.acknowledge(written["position"], "blackboard.written", COUNTER_STREAM)
    return version + 1


async def remember(http: httpx.AsyncClient, run: Run, writer: int) -> None:
    """Sets of the writer's own key and of a key every writer sets."""
    for i in itertools.count():
        key, value = (f"m{writer}", {"w": writer, "i": i}) if i % 2 else (SHARED_KEY, {"w": writer, "i": i})
        try:
            await set_memory(http, run, key, value)
        except httpx.TransportError:
            run.lost_memory.append((key, value))
            return


async def set_memory(http: httpx.AsyncClient, run: Run, key: str, value: Any) -> None:
    answer = await http.put(f"/v1/memory/{key}", json={"value": value})
    assert answer.status_code == 200, answer.text
    position = answer.json()["position"]
    run.memory.append((position, key, value))
    run.acknowledge(position, "memory.set", f"memory:{USER}:{key}")


async def talk(http: httpx.AsyncClient, run: Run, writer: int) -> None:
    """Messages to the writer's own session and to one every writer adds to."""
    for i in itertools.count():
        session = f"chat-{writer}" if i % 2 else SHARED_SESSION
        content = f"msg-{writer}-{i}"
        try:
            await add_message(http, run, session, content)
        except httpx.TransportError:
            run.lost_messages.append((session, content))
            return


async def add_message(http: httpx.AsyncClient, run: Run, session: str, content: str) -> None:
    answer = await http.post(f"/v1/sessions/{session}/messages", json={"role": "user", "content": content})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    run.messages.append((session, body["index"], content, body["position"]))
    run.acknowledge(body["position"], "session.message_added", f"session:{USER}:{session}")


async def read_views(http: httpx.AsyncClient, run: Run) -> None:
    """Read-your-writes reads of every view at the newest acknowledged position, until the kill."""
    while True:
        wanted = run.high
        for name, path in VIEW_READS.items():
            try:
                answer = await http.get(path, headers={"X-Spine-Min-Position": str(wanted)})
            except httpx.TransportError:
                return
            if answer.status_code == 503:  # a view more than the read wait behind: not an error
                problem(answer, 503, "projection.lagging")
                continue
            assert answer.status_code == 200, answer.text
            run.reflected[name] = max(run.reflected.get(name, 0), wanted)
        run.check()


# Reading the stores and views


def view_store_state(data_dir: Path) -> tuple[dict[str, int], dict[str, tuple[int, int | None]]]:
    """Checkpoints by space and generations by view, read from `views.db` as the kill left it.

    Read-only: a read-write connection would checkpoint the WAL when it closes, and the restarted
    server must find the files exactly as the crash left them.
    """
    uri = f"file:{data_dir / 'views.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        checkpoints = dict(db.execute("SELECT space, checkpoint FROM view_spaces"))
        generations = {
            name: (serving, building)
            for name, serving, building in db.execute(
                "SELECT projection, serving, building FROM view_generations WHERE pkey = ?", (PARTITION.key,)
            )
        }
    return checkpoints, generations


def space(name: str) -> str:
    return f"{PARTITION.key}/{name}/0"


async def admin_headers(server: SpineServer) -> dict[str, str]:
    """A system admin (bootstrap is idempotent: it answers a token every time)."""
    key = (server.data_dir / "secrets" / "bootstrap.key").read_text().strip()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        answer = await http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": key})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def projections(
    http: httpx.AsyncClient, admin: dict[str, str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """GET /v1/projections of the tenant, by (view, project)."""
    answer = await http.get("/v1/projections", params={"tenant_id": TENANT}, headers=admin)
    assert answer.status_code == 200, answer.text
    return {(view["name"], view["project_id"]): view for view in answer.json()["projections"]}


def projection_batches(metrics: str) -> dict[str, int]:
    """View batches this process has written, per projection (one observation of
    `spine_projection_delay_seconds` per batch that held events)."""
    found = re.findall(r'^spine_projection_delay_seconds_count\{projection="([^"]+)"\} (\S+)$', metrics, re.M)
    return {name: int(float(count)) for name, count in found}


def batches_after(log: list[Event], name: str, checkpoint: int) -> int:
    """The batches with events a runner of `name` writes to project the log after `checkpoint`."""
    handles = VIEWS[name][0].handles
    events = [e for e in log if e.position > checkpoint and (handles is None or e.type in handles)]
    return math.ceil(len(events) / PAGE)


def waiting(position: int) -> dict[str, str]:
    return {"X-Spine-Min-Position": str(position)}


async def get_ok(http: httpx.AsyncClient, path: str, position: int, **params: Any) -> Any:
    answer = await http.get(path, params=params, headers=waiting(position))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def ledger(http: httpx.AsyncClient, position: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        page = await get_ok(http, "/v1/budget/ledger", position, after=after, limit=1000)
        entries += page["entries"]
        if not page["entries"]:
            return entries
        after = page["next"]


async def audit(http: httpx.AsyncClient, position: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 1000}
    while True:
        page = await get_ok(http, "/v1/audit", position, **params)
        records += page["records"]
        if page["next"] is None:
            return records
        params["after"] = page["next"]


def by_stream(log: list[Event], stream: str) -> Iterator[Event]:
    return (event for event in log if event.stream == stream)


async def test_views_are_exact_after_sigkill_mid_write_and_restart(server: SpineServer) -> None:
    run = Run()
    async with connect(server) as http:
        answer = await http.put(
            "/v1/budget/limits", json={"period": "total", "unit": LIMITED, "limit": LIMIT, "hard": True}
        )
        assert answer.status_code == 200, answer.text
        run.acknowledge(answer.json()["position"], "budget.limit_set", f"budget:{LIMITED}")
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for writer in range(WRITERS):
                    tg.start_soon(use_budget, http, run, UNLIMITED, writer)
                    tg.start_soon(use_budget, http, run, LIMITED, writer)
                    tg.start_soon(increment, http, run, writer)
                    tg.start_soon(remember, http, run, writer)
                    tg.start_soon(talk, http, run, writer)
                tg.start_soon(read_views, http, run)
                await run.enough.wait()
                await server.kill()  # every writer and the reader are mid-request: none stops on its own

    # Every writer lost exactly its one request in flight; nothing else went unanswered.
    assert len(run.lost_usages) == 2 * WRITERS
    assert (len(run.lost_increments), len(run.lost_memory), len(run.lost_messages)) == (WRITERS,) * 3

    # Down: the views' checkpoints are on disk, each past the first page, in generation 0.
    checkpoints, generations = view_store_state(server.data_dir)
    names = set(VIEW_READS)
    assert generations == dict.fromkeys(names, (0, None))
    assert all(checkpoints[space(name)] > PAGE for name in names), checkpoints

    with anyio.fail_after(60):
        await server.start()
        admin = await admin_headers(server)
        async with server.client() as client:
            log = await read_all(client)  # what the crash left: every acknowledged write, perhaps more
        assert_gapless(log)
        head = len(log)
        assert all((log[p - 1].type, log[p - 1].stream) == write for p, write in run.writes.items())
        assert all(checkpoints[space(name)] <= head for name in names)

        async with connect(server) as http:
            # The restarted runners continue from their checkpoints: generation 0, and exactly the
            # batches the events after each checkpoint need, fewer than a replay from 0 would write.
            for path in VIEW_READS.values():
                await get_ok(http, path, head)
            await assert_projections(http, admin, names, head)
            batches = projection_batches((await http.get("/metrics")).text)
            expected = {name: batches_after(log, name, checkpoints[space(name)]) for name in names}
            assert {name: batches.get(name, 0) for name in names} == expected
            assert batches_after(log, "audit", 0) > expected["audit"]  # a replay from 0 would show

            await retry_lost_writes(http, run, log)
            async with server.client() as client:
                final = await read_all(client)
            assert_gapless(final)
            assert final[:head] == log
            head = len(final)
            await assert_views_exact(http, run, final, head)
            await assert_projections(http, admin, names, head)


def connect(server: SpineServer) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=10, limits=limits)


async def assert_projections(
    http: httpx.AsyncClient, admin: dict[str, str], names: set[str], head: int
) -> None:
    """Every view of the tenant serves generation 0, with no rebuild; the project's are at `head`."""
    status = await projections(http, admin)
    assert {name for name, project in status if project == PROJECT} == names
    for (_, project), view in status.items():
        assert (view["generation"], view["rebuild"]) == (0, None), view
        if project == PROJECT:
            assert (view["position"], view["lag"]) == (head, 0), view


async def retry_lost_writes(http: httpx.AsyncClient, run: Run, log: list[Event]) -> None:
    """Each write whose answer was lost: a usage is sent again with its id (answered as stored, or
    refused); an increment or a message the log holds is counted, else made again; a memory set is
    sent again (setting a value twice is harmless)."""
    stored = {event.id: event for event in log}
    for body in run.lost_usages:
        original = stored.get(usage_event_id(PARTITION, body["unit"], body["id"]))
        answer = await http.post("/v1/budget/usage", json=body)
        if original is None:  # recorded now, unless the limit refuses it
            assert answer.status_code in (201, 402), answer.text
            assert answer.status_code == 201 or body["unit"] == LIMITED
            assert answer.status_code == 402 or answer.json()["replayed"] is False
        else:
            assert answer.status_code == 201, answer.text
            assert (answer.json()["replayed"], answer.json()["position"]) == (True, original.position)
        record_usage(run, body, answer)
    # Usages acknowledged before the crash, sent again: the original answers, even past the limit.
    for body, position in itertools.islice(run.usages.values(), 0, None, 25):
        answer = await http.post("/v1/budget/usage", json=body)
        assert answer.status_code == 201, answer.text
        assert (answer.json()["replayed"], answer.json()["position"]) == (True, position)

    counter = {event.data["value"]["tag"]: event for event in by_stream(log, COUNTER_STREAM)}
    version = max((event.version for event in counter.values()), default=0)
    for tag in run.lost_increments:
        if tag in counter:
            run.increments[tag] = counter[tag].version
            run.acknowledge(counter[tag].position, "blackboard.written", COUNTER_STREAM)
        else:  # no other writer is left: the first attempt wins
            assert await cas(http, run, tag, version) == version + 1
            version += 1

    for key, value in run.lost_memory:
        await set_memory(http, run, key, value)

    for session, content in run.lost_messages:
        found = [e for e in by_stream(log, f"session:{USER}:{session}") if e.data["content"] == content]
        if found:
            [event] = found
            run.messages.append((session, event.version - 1, content, event.position))
            run.acknowledge(event.position, "session.message_added", event.stream)
        else:
            await add_message(http, run, session, content)


async def assert_views_exact(http: httpx.AsyncClient, run: Run, log: list[Event], head: int) -> None:
    # Budget: totals are the acknowledged usages, each id once; the limited unit never passes its limit.
    units = {unit["unit"]: unit for unit in (await get_ok(http, "/v1/budget", head))["units"]}
    for unit in (UNLIMITED, LIMITED):
        amounts = [body["amount"] for body, _ in run.usages.values() if body["unit"] == unit]
        total = units[unit]["totals"]["total"]
        assert (total["amount"], total["count"]) == (sum(amounts), len(amounts))
        usages_in_log = [e for e in by_stream(log, f"budget:{unit}") if e.type == "budget.usage_recorded"]
        assert len(usages_in_log) == len(amounts)
    assert units[LIMITED]["totals"]["total"]["amount"] == LIMIT  # reached during the run, never passed
    limit = units[LIMITED]["limits"]["total"]
    assert (limit["limit"], limit["hard"], limit["used"], limit["remaining"]) == (LIMIT, True, LIMIT, 0)
    assert not run.refused & set(run.usages)
    entries = await ledger(http, head)
    ledger_ids = [entry["id"] for entry in entries]
    assert sorted(ledger_ids) == sorted(run.usages), "one ledger entry per usage id, no more"
    assert {entry["id"]: entry["position"] for entry in entries} == {i: p for i, (_, p) in run.usages.items()}

    # Blackboard: the counter's value is its version is the number of successful increments.
    entry = await get_ok(http, f"/v1/runs/{RUN}/blackboard/{COUNTER}", head)
    successes = len(run.increments)
    assert (entry["value"]["n"], entry["version"]) == (successes, successes)
    assert sorted(run.increments.values()) == list(range(1, successes + 1))
    assert [e.version for e in by_stream(log, COUNTER_STREAM)] == list(range(1, successes + 1))

    # Memory: each key holds the last acknowledged value.
    last: dict[str, Any] = {}
    for _, key, value in sorted(run.memory, key=lambda write: write[0]):
        last[key] = value
    for key, value in last.items():
        answer = await get_ok(http, f"/v1/memory/{key}", head)
        assert (answer["found"], answer["value"]) == (True, value), key

    # Sessions: indexes 0..n-1, n the session stream's version, each acknowledged message at its index.
    sessions = {session for session, *_ in run.messages}
    for session in sessions:
        messages = (await get_ok(http, f"/v1/sessions/{session}", head))["messages"]
        in_log = list(by_stream(log, f"session:{USER}:{session}"))
        assert [m["index"] for m in messages] == list(range(len(in_log)))
        assert [m["content"] for m in messages] == [e.data["content"] for e in in_log]
        acked = [(index, content) for s, index, content, _ in run.messages if s == session]
        assert all(messages[index]["content"] == content for index, content in acked)
        assert len({content for _, content in acked}) == len(acked)

    # Audit: one record per event of the log, hence per acknowledged write; none twice.
    records = await audit(http, head)
    assert [r["source"] for r in records] == ["write"] * len(records)
    assert sorted(r["position"] for r in records) == list(range(1, head + 1))
    assert len({r["id"] for r in records}) == head
    by_position = {r["position"]: r for r in records}
    assert all((by_position[e.position]["action"], by_position[e.position]["resource"]) == (e.type, e.stream)
               for e in log)  # fmt: skip
    assert all(
        (by_position[p]["action"], by_position[p]["resource"]) == write for p, write in run.writes.items()
    )

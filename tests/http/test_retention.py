"""`/v1/retention`: rules as control-plane data, runs that remove expired events, and readers
told about what retention removed (`X-Spine-Truncated`, an SSE comment) — never an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.conftest import Clock, sse_frames
from tests.http.test_events_api import assert_problem
from tests.provision import provision, provision_sync


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC))


@pytest.fixture
def boss(client: TestClient) -> dict[str, str]:
    """An admin of t1, project p1 (the `headers` fixture's member shares the project)."""
    return provision_sync(client, user="boss", role="admin")


def append(client: TestClient, headers: dict[str, str], stream: str, count: int = 1) -> Any:
    events = [{"type": "thing.done", "data": {"n": n}} for n in range(count)]
    answer = client.post("/v1/events", json={"stream": stream, "events": events}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def set_rules(client: TestClient, headers: dict[str, str], *rules: dict[str, Any]) -> Any:
    return client.put("/v1/retention", json={"rules": list(rules)}, headers=headers)


def run(client: TestClient, headers: dict[str, str], *, dry_run: bool = False) -> dict[str, Any]:
    answer = client.post("/v1/retention/runs", json={"dry_run": dry_run}, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def positions(client: TestClient, headers: dict[str, str], **params: Any) -> list[int]:
    answer = client.get("/v1/events", params={"limit": 1000, **params}, headers=headers)
    assert answer.status_code == 200, answer.text
    return [event["position"] for event in answer.json()["events"]]


def test_admins_set_the_rules_and_members_read_them(
    client: TestClient, headers: dict[str, str], boss: dict[str, str]
) -> None:
    rules = [{"stream_prefix": "session:", "max_age_days": 30}, {"stream_prefix": "memory:", "keep_last": 1}]
    answer = set_rules(client, boss, *rules)
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["x-spine-position"]) == answer.json()["position"]
    body = client.get("/v1/retention", headers=headers).json()
    assert body["rules"] == [{**rules[0], "keep_last": None}, {**rules[1], "max_age_days": None}]
    assert (body["tenant_id"], body["project_id"], body["truncated_through"]) == ("t1", "p1", 0)
    assert_problem(set_rules(client, headers, *rules), 403, "auth.forbidden")
    assert_problem(client.post("/v1/retention/runs", json={}, headers=headers), 403, "auth.forbidden")


@pytest.mark.parametrize(
    "rules",
    [
        [{"stream_prefix": "session:"}],  # no limit
        [{"stream_prefix": "a", "keep_last": 1}, {"stream_prefix": "a", "max_age_days": 2}],
        [{"stream_prefix": "a/b", "keep_last": 1}],
        [{"stream_prefix": "", "keep_last": 1}],
        [{"stream_prefix": "a", "keep_last": 0}],
        [{"stream_prefix": "a", "max_age_days": -1}],
        [{"stream_prefix": "a", "keep_last": 1, "extra": True}],
        [{"stream_prefix": f"s{n}", "keep_last": 1} for n in range(101)],
    ],
)
def test_bad_rules_are_refused_and_change_nothing(
    client: TestClient, boss: dict[str, str], rules: list[dict[str, Any]]
) -> None:
    assert_problem(set_rules(client, boss, *rules), 422, "request.invalid")
    assert client.get("/v1/retention", headers=boss).json()["rules"] == []


def test_keep_last_removes_the_oldest_and_readers_are_told(
    client: TestClient, headers: dict[str, str], boss: dict[str, str]
) -> None:
    append(client, headers, "chat:a", 5)  # positions 1..5
    append(client, headers, "keep:x", 2)  # 6, 7
    append(client, headers, "chat:b")  # 8: b's only event
    assert set_rules(client, boss, {"stream_prefix": "chat:", "keep_last": 2}).status_code == 200

    preview = run(client, boss, dry_run=True)
    assert (preview["planned"], preview["removed"], preview["by_stream"]) == (3, 0, {"chat:a": 3})
    assert positions(client, headers) == list(range(1, 9))

    done = run(client, boss)
    assert (done["scanned"], done["removed"], done["truncated_through"]) == (8, 3, 3)
    page = client.get("/v1/events", headers=headers)
    assert [e["position"] for e in page.json()["events"]] == [4, 5, 6, 7, 8]
    assert (page.json()["head"], page.headers["x-spine-truncated"]) == (8, "3")
    assert "x-spine-truncated" not in client.get("/v1/events?after=3", headers=headers).headers
    assert positions(client, headers, after=1) == [4, 5, 6, 7, 8]  # a cursor inside the removed range

    stream = client.get("/v1/streams/chat:a", headers=headers)
    assert ([e["version"] for e in stream.json()["events"]], stream.json()["version"]) == ([4, 5], 5)
    assert stream.headers["x-spine-truncated"] == "3"
    assert (
        "x-spine-truncated" not in client.get("/v1/streams/chat:a?after_version=3", headers=headers).headers
    )

    # the stream's version goes on, and the next run has nothing left to do
    answer = client.post(
        "/v1/events",
        json={"stream": "chat:a", "expected_version": 5, "events": [{"type": "thing.done"}]},
        headers=headers,
    )
    assert answer.json() == {"first_position": 9, "last_position": 9, "stream_version": 6}
    assert run(client, boss)["removed"] == 1  # version 4 is now beyond the two newest
    assert client.get("/v1/retention", headers=headers).json()["truncated_through"] == 4


def test_max_age_removes_what_is_older_and_keeps_each_streams_last_event(
    client: TestClient, headers: dict[str, str], boss: dict[str, str], clock: Clock
) -> None:
    append(client, headers, "chat:old", 3)  # 1..3
    append(client, headers, "note:old", 2)  # 4, 5: no rule covers them
    set_rules(client, boss, {"stream_prefix": "chat:", "max_age_days": 30})
    assert run(client, boss)["removed"] == 0  # nothing is 30 days old yet
    clock.now += timedelta(days=29, hours=23)
    assert run(client, boss)["removed"] == 0
    clock.now += timedelta(hours=2)  # the store stamped them with its own time, now 30 days old
    assert run(client, boss, dry_run=True)["by_stream"] == {"chat:old": 2}
    assert run(client, boss)["removed"] == 2
    assert positions(client, headers) == [3, 4, 5]


def test_runs_touch_only_the_projects_partition(client: TestClient, boss: dict[str, str]) -> None:
    other_project = provision_sync(client, project="p2", user="boss", role="admin")
    other_tenant = provision_sync(client, tenant="t2", user="boss", role="admin")
    for who in (boss, other_project, other_tenant):
        append(client, who, "chat:a", 4)
    set_rules(client, boss, {"stream_prefix": "chat:", "keep_last": 1})
    assert run(client, boss)["removed"] == 3
    assert positions(client, boss) == [4]
    assert run(client, other_project)["removed"] == 0  # p2 has no rules
    assert positions(client, other_project) == positions(client, other_tenant) == [1, 2, 3, 4]
    assert "x-spine-truncated" not in client.get("/v1/events", headers=other_project).headers


def test_budget_totals_survive_retention_and_a_rebuild(
    client: TestClient, headers: dict[str, str], boss: dict[str, str], clock: Clock
) -> None:
    """Retention keeps a unit's last event (its state) and first writes `budget.totals_kept`: the
    totals of every day and month a removed usage counted in, and the limits whose setting goes."""

    def overview() -> Any:
        head = client.get("/v1/events?limit=1", headers=headers).json()["head"]
        answer = client.get("/v1/budget", headers={**headers, "X-Spine-Min-Position": str(head)})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def use(amount: float) -> None:
        answer = client.post("/v1/budget/usage", json={"amount": amount, "unit": "tokens"}, headers=headers)
        assert answer.status_code == 201, answer.text

    clock.now = datetime(2026, 11, 10, 12, tzinfo=UTC)
    limit = {"period": "month", "unit": "tokens", "limit": 1e6, "hard": True}
    assert client.put("/v1/budget/limits", json=limit, headers=headers).status_code == 200
    use(10)
    use(20)
    clock.now += timedelta(days=1)
    use(5)
    use(7)

    def both_days() -> list[Any]:
        today = overview()
        clock.now -= timedelta(days=1)
        yesterday = overview()
        clock.now += timedelta(days=1)
        return [today, yesterday]

    before = both_days()
    assert before[1]["units"][0]["totals"]["day"]["amount"] == 30
    set_rules(client, boss, {"stream_prefix": "budget:", "keep_last": 1})
    assert run(client, boss)["by_stream"] == {"budget:tokens": 4}  # the limit and three usages
    assert both_days() == before  # the incremental view, the summary applied
    rebuilt = client.post("/v1/projections/budget/rebuild?wait=true", headers=boss)
    assert rebuilt.status_code == 202, rebuilt.text
    assert both_days() == before  # rebuilt from what survived: the summary and the last usage
    assert run(client, boss)["by_stream"] == {"budget:tokens": 1}  # the last usage: the summary follows it
    assert run(client, boss)["planned"] == 0  # runs come to rest: a summary needs no summary
    assert both_days() == before
    use(1)  # decisions go on from the kept state
    assert overview()["units"][0]["totals"]["month"]["amount"] == 43


async def test_a_follower_behind_the_mark_is_told_and_sees_each_survivor_once(
    http: httpx.AsyncClient,
) -> None:
    boss = await provision(http, user="boss", role="admin")
    for _ in range(6):
        await http.post("/v1/events", json={"stream": "chat:a", "events": [{"type": "thing.done"}]})
    await http.put(
        "/v1/retention", json={"rules": [{"stream_prefix": "chat:", "keep_last": 2}]}, headers=boss
    )
    answer = await http.post("/v1/retention/runs", json={}, headers=boss)
    assert answer.json()["removed"] == 4

    frames: list[dict[str, str]] = []
    async with http.stream("GET", "/v1/events/stream", headers={"Last-Event-ID": "1"}) as response:
        async for frame in sse_frames(response):
            frames.append(frame)
            if frame.get("id") == "6":
                break
    assert frames[1] == {"comment": "truncated through 4"}  # after the retry: line
    assert [frame["id"] for frame in frames if "id" in frame] == ["5", "6"]


async def test_retention_under_concurrent_appends_and_followers(http: httpx.AsyncClient) -> None:
    """Runs remove while writers append and followers read: no follower sees a position go
    backwards or an event twice, and every event a run did not remove reaches every follower."""
    boss = await provision(http, user="boss", role="admin")
    rules = {"rules": [{"stream_prefix": "w", "keep_last": 3}]}
    assert (await http.put("/v1/retention", json=rules, headers=boss)).status_code == 200
    writers, per_writer = 4, 40
    seen: list[list[int]] = [[], []]
    removed: list[int] = []

    async def write(n: int) -> None:
        for _ in range(per_writer):
            answer = await http.post(
                "/v1/events", json={"stream": f"w{n}", "events": [{"type": "thing.done"}]}
            )
            assert answer.status_code == 201, answer.text

    async def run_retention() -> None:
        for _ in range(5):
            answer = await http.post("/v1/retention/runs", json={}, headers=boss)
            assert answer.status_code == 200, answer.text
            removed.append(answer.json()["removed"])
            await anyio.lowlevel.checkpoint()

    async def follow(into: list[int]) -> None:
        async with http.stream("GET", "/v1/events/stream", params={"after": 0}) as response:
            async for frame in sse_frames(response):
                if "id" in frame:
                    into.append(int(frame["id"]))
                    if into[-1] == writers * per_writer:
                        return

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for index in range(2):
                tg.start_soon(follow, seen[index])
            for n in range(writers):
                tg.start_soon(write, n)
            tg.start_soon(run_retention)
    survivors = [
        e["position"] for e in (await http.get("/v1/events", params={"limit": 1000})).json()["events"]
    ]
    for positions_seen in seen:
        assert positions_seen == sorted(set(positions_seen))  # forwards only, each once
        assert set(survivors) <= set(positions_seen)  # what survived reached every follower
    final = await http.post("/v1/retention/runs", json={}, headers=boss)
    assert len(survivors) - final.json()["removed"] == writers * 3

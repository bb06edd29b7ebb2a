"""`/v1/analytics`: events attributed from the request context, queries by time, run and name,
counts per name per day, batched ingest, idempotent retries, isolation and rebuilds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.conftest import Clock
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/analytics/events"
BATCH = "/v1/analytics/events/batch"
COUNTS = "/v1/analytics/counts"
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    """A member of t1 (lab), project p1, surface web, app app1."""
    return {**provision_sync(client), "X-App-Id": "app1"}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def track(client: TestClient, headers: dict[str, str], name: str = "page.view", **body: Any) -> Any:
    return client.post(URL, json={"name": name, "platform": "web", **body}, headers=headers)


def batch(client: TestClient, headers: dict[str, str], events: list[dict[str, Any]]) -> Any:
    return client.post(BATCH, json={"events": events}, headers=headers)


def ok(answer: Any, status: int = 201) -> Any:
    assert answer.status_code == status, answer.text
    return answer


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def read(client: TestClient, path: str, headers: dict[str, str], write: Any = None, **params: Any) -> Any:
    """One page of a read that waits for `write` (when given) to be reflected."""
    sent = headers if write is None else waited(headers, write)
    return ok(client.get(path, params=params, headers=sent), 200).json()


def events(
    client: TestClient, headers: dict[str, str], write: Any = None, **params: Any
) -> list[dict[str, Any]]:
    """Every event the query finds, in one page of up to 1000."""
    page = read(client, URL, headers, write, limit=1000, **params)
    assert page["next"] is None
    found: list[dict[str, Any]] = page["events"]
    return found


def counts(
    client: TestClient, headers: dict[str, str], write: Any = None, **params: Any
) -> list[tuple[str, str, int]]:
    page = read(client, COUNTS, headers, write, limit=1000, **params)
    assert page["next"] is None
    return [(c["name"], c["day"], c["count"]) for c in page["counts"]]


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", params={"limit": 1}, headers=headers), 200).json()["head"]
    return answer


def add_app_and_surface(client: TestClient, admin: dict[str, str], tenant: str = "t1") -> None:
    ok(client.post(f"/v1/tenants/{tenant}/apps", json={"app_id": "app2", "name": "app2"}, headers=admin))
    ok(
        client.post(
            f"/v1/tenants/{tenant}/surfaces", json={"surface_id": "ios", "name": "ios"}, headers=admin
        )
    )


# Recording


def test_an_event_is_201_with_its_id_and_position_and_reads_back_attributed_from_the_context(
    client: TestClient, headers: dict[str, str]
) -> None:
    utm = {
        "utm_source": "news letter",
        "utm_medium": "email",
        "utm_campaign": "Black Friday ✓",
        "utm_term": "shoes",
        "utm_content": "hero",
    }
    answer = ok(
        track(
            client,
            headers,
            "checkout.completed",
            platform="ios",
            run_id="run-1",
            properties={"total": 12.5, "items": [1, 2]},
            **utm,
        )
    )
    body = answer.json()
    assert answer.headers["x-spine-position"] == str(body["position"]) == "1"
    assert "analytics_store.missing_route" in answer.headers["x-spine-warning"]  # lab fallback, said loudly
    [record] = events(client, headers, answer)
    assert record == {
        "id": body["id"],
        "client_id": None,
        "position": 1,
        "time": stamp(START),
        "name": "checkout.completed",
        "platform": "ios",
        "run_id": "run-1",
        **utm,
        "properties": {"total": 12.5, "items": [1, 2]},
        "attribution": {
            "tenant_id": "t1",
            "mode": "lab",
            "env": "dev",
            "project_id": "p1",
            "app_id": "app1",
            "surface_id": "web",
            "user_id": "u1",
        },
        "request_id": record["request_id"],
    }
    assert record["request_id"]


def test_optional_fields_default_to_null(client: TestClient, headers: dict[str, str]) -> None:
    [record] = events(client, headers, ok(track(client, headers)))
    assert [record[k] for k in ("run_id", "utm_source", "utm_content", "properties")] == [None] * 4


@pytest.mark.parametrize("path", [URL, BATCH, COUNTS])
def test_every_analytics_route_needs_the_app_and_the_surface(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    body = {"name": "a", "platform": "web"}
    sent = {"events": [body]} if path == BATCH else body
    for missing in ("X-App-Id", "X-Surface-Id"):
        without = {k: v for k, v in headers.items() if k != missing}
        answers = (
            [client.get(path, headers=without)]
            if path == COUNTS
            else [client.post(path, json=sent, headers=without)]
        )
        if path == URL:
            answers.append(client.get(path, headers=without))
        for answer in answers:
            assert assert_problem(answer, 400, "context.missing_field")["field"] == missing
    unknown = {**headers, "X-App-Id": "nope"}
    assert_problem(
        client.post(path, json=sent, headers=unknown)
        if path != COUNTS
        else client.get(path, headers=unknown),
        400,
        "context.unknown_app",
    )
    assert head(client, headers) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant_id", "t2"),
        ("mode", "saas"),
        ("env", "prod"),
        ("project_id", "p2"),
        ("app_id", "app2"),
        ("surface_id", "ios"),
        ("user_id", "u2"),
    ],
)
def test_attribution_that_disagrees_with_the_context_is_403_and_nothing_is_appended(
    client: TestClient, headers: dict[str, str], field: str, value: str
) -> None:
    problem = assert_problem(track(client, headers, **{field: value}), 403, "auth.identity_override")
    assert (problem["field"], problem["source"]) == (field, "payload")
    events_ = [{"name": "ok", "platform": "web"}, {"name": "bad", "platform": "web", field: value}]
    problem = assert_problem(batch(client, headers, events_), 403, "auth.identity_override")
    assert (problem["field"], problem["source"]) == (f"events[1].{field}", "payload")
    assert head(client, headers) == 0


def test_attribution_that_repeats_the_context_is_accepted_and_the_context_is_what_is_stored(
    client: TestClient, headers: dict[str, str]
) -> None:
    same = {
        "tenant_id": "t1",
        "mode": "lab",
        "env": "development",
        "project_id": "p1",
        "app_id": "app1",
        "surface_id": "web",
        "user_id": "u1",
    }
    ok(track(client, headers, **same))
    last = ok(batch(client, headers, [{"name": "b", "platform": "web", **same}]))
    found = events(client, headers, last)
    assert [r["attribution"] for r in found] == [{**same, "env": "dev"}] * 2  # the env as stored: normalized


def test_a_refused_claim_in_a_batch_is_audited_like_one_at_the_top(
    client: TestClient, headers: dict[str, str]
) -> None:
    refused = batch(
        client,
        {**headers, "X-Request-Id": "claim-1"},
        [{"name": "a", "platform": "web"}, {"name": "b", "platform": "web", "tenant_id": "t2"}],
    )
    assert_problem(refused, 403, "auth.identity_override")
    written = client.post("/v1/audit", json={"action": "x.y", "resource": "r"}, headers=headers)
    records = read(client, "/v1/audit", headers, written)["records"]
    [violation] = [r for r in records if r["action"] == "auth.violation"]
    assert (violation["actor"], violation["request_id"], violation["resource"]) == ("u1", "claim-1", BATCH)
    assert (violation["details"]["field"], violation["details"]["sent"]) == ("events[1].tenant_id", "t2")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"platform": "web"}, id="no-name"),
        pytest.param({"name": "a"}, id="no-platform"),
        pytest.param({"name": "Page.View", "platform": "web"}, id="upper-name"),
        pytest.param({"name": "1st", "platform": "web"}, id="digit-first"),
        pytest.param({"name": "a b", "platform": "web"}, id="space-in-name"),
        pytest.param({"name": "a" * 129, "platform": "web"}, id="long-name"),
        pytest.param({"name": 7, "platform": "web"}, id="number-name"),
        pytest.param({"name": "a", "platform": "Web"}, id="upper-platform"),
        pytest.param({"name": "a", "platform": "w:b"}, id="colon-platform"),
        pytest.param({"name": "a", "platform": "w" * 65}, id="long-platform"),
        pytest.param({"name": "a", "platform": "web", "utm_source": ""}, id="empty-utm"),
        pytest.param({"name": "a", "platform": "web", "utm_medium": "x" * 257}, id="long-utm"),
        pytest.param({"name": "a", "platform": "web", "utm_campaign": "a\nb"}, id="newline-utm"),
        pytest.param({"name": "a", "platform": "web", "utm_term": "a\x00"}, id="nul-utm"),
        pytest.param({"name": "a", "platform": "web", "utm_content": "a\x7f"}, id="del-utm"),
        pytest.param({"name": "a", "platform": "web", "utm_source": 5}, id="number-utm"),
        pytest.param({"name": "a", "platform": "web", "utm_sorce": "typo"}, id="unknown-field"),
        pytest.param({"name": "a", "platform": "web", "properties": [1]}, id="list-properties"),
        pytest.param(
            {"name": "a", "platform": "web", "properties": {"k": "x" * 16_400}}, id="big-properties"
        ),
        pytest.param({"name": "a", "platform": "web", "run_id": "no spaces"}, id="bad-run"),
        pytest.param({"name": "a", "platform": "web", "id": ""}, id="empty-id"),
        pytest.param({"name": "a", "platform": "web", "id": "a/b"}, id="bad-id"),
    ],
)
def test_invalid_events_are_422_alone_or_in_a_batch_and_nothing_is_appended(
    client: TestClient, headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(client.post(URL, json=body, headers=headers), 422, "request.invalid")
    good = {"name": "fine", "platform": "web"}
    problem = assert_problem(batch(client, headers, [good, good, body]), 422, "request.invalid")
    assert "events[2]" in problem["message"]  # which event is wrong
    assert head(client, headers) == 0


def test_a_utm_value_of_256_characters_of_any_language_is_accepted(
    client: TestClient, headers: dict[str, str]
) -> None:
    value = "é" * 255 + "✓"
    [record] = events(client, headers, ok(track(client, headers, utm_source=value)))
    assert record["utm_source"] == value


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"events": []}, id="empty"),
        pytest.param({"events": [{"name": "a", "platform": "web"}] * 1001}, id="over-1000"),
        pytest.param({}, id="no-events"),
        pytest.param({"events": {"name": "a", "platform": "web"}}, id="not-a-list"),
        pytest.param({"events": [{"name": "a", "platform": "web"}], "tenant_id": "t1"}, id="top-level-field"),
        pytest.param(
            {
                "events": [
                    {"name": "a", "platform": "web", "id": "x"},
                    {"name": "b", "platform": "web", "id": "x"},
                ]
            },
            id="repeated-id",
        ),
    ],
)
def test_invalid_batches_are_422_and_nothing_is_appended(
    client: TestClient, headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(client.post(BATCH, json=body, headers=headers), 422, "request.invalid")
    assert head(client, headers) == 0


def test_a_repeated_id_names_both_events(client: TestClient, headers: dict[str, str]) -> None:
    sent = [
        {"name": "a", "platform": "web", "id": "x"},
        {"name": "b", "platform": "web"},
        {"name": "c", "platform": "web", "id": "x"},
    ]
    problem = assert_problem(batch(client, headers, sent), 422, "request.invalid")
    assert "events[2]" in problem["message"]
    assert "events[0]" in problem["message"]


def test_a_batch_of_1000_answers_each_events_id_and_position_in_the_order_sent(
    client: TestClient, headers: dict[str, str]
) -> None:
    names = ["view", "click", "view.deep"]
    sent = [{"name": names[i % 3], "platform": "web", "properties": {"i": i}} for i in range(1000)]
    answer = ok(batch(client, headers, sent))
    body = answer.json()
    assert sorted(body["positions"]) == list(range(1, 1001))  # one position each, none shared
    assert body["position"] == 1000 == int(answer.headers["x-spine-position"])
    assert len(set(body["ids"])) == 1000
    found = {r["position"]: r for r in events(client, headers, answer)}
    for i, (event_id, position) in enumerate(zip(body["ids"], body["positions"], strict=True)):
        record = found[position]
        assert (record["id"], record["name"], record["properties"]) == (event_id, names[i % 3], {"i": i})
    assert counts(client, headers, answer) == [
        ("click", "2026-11-28", 333),
        ("view", "2026-11-28", 334),
        ("view.deep", "2026-11-28", 333),
    ]


# Idempotency


def test_a_retried_event_id_answers_the_original_and_appends_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    first = ok(track(client, headers, id="evt-1"))
    other = ok(track(client, headers))
    again = ok(track(client, headers, id="evt-1", properties={"retry": True}))
    assert again.json() == first.json()
    assert again.headers["x-spine-position"] == "1"
    assert head(client, headers) == 2
    found = events(client, headers, other)
    assert [(r["client_id"], r["properties"]) for r in found] == [("evt-1", None), (None, None)]
    assert counts(client, headers, other) == [("page.view", "2026-11-28", 2)]


def test_a_retried_batch_appends_nothing_twice_and_completes_one_that_stopped_midway(
    client: TestClient, headers: dict[str, str]
) -> None:
    sent = [{"name": "a", "platform": "web", "id": f"e{i}"} for i in range(3)]
    sent += [{"name": "b", "platform": "ios", "id": f"e{i}"} for i in range(3, 5)]
    # Only the first group reached the log (an answer lost, a 503 mid-batch): sending it all again
    # completes the batch, and the group stored before answers with its original positions.
    first = ok(batch(client, headers, sent[:3])).json()
    whole = ok(batch(client, headers, sent)).json()
    assert whole["positions"][:3] == first["positions"] == [1, 2, 3]
    assert whole["positions"][3:] == [4, 5]
    again = ok(batch(client, headers, sent))
    assert again.json() == whole
    assert head(client, headers) == 5
    assert counts(client, headers, again) == [("a", "2026-11-28", 3), ("b", "2026-11-28", 2)]


def test_events_stored_before_are_answered_in_a_batch_with_their_own_positions(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(track(client, headers, "a", id="x"))  # sent alone first (an offline queue flushed later)
    ok(track(client, headers, "a"))
    sent = [
        {"name": "a", "platform": "web", "id": "x"},
        {"name": "a", "platform": "web", "id": "y"},
        {"name": "a", "platform": "web"},
    ]
    assert ok(batch(client, headers, sent)).json()["positions"] == [1, 3, 4]
    again = ok(batch(client, headers, sent))
    assert again.json()["positions"] == [1, 3, 5]  # no id: nothing to know it by
    # every id stored, but not as one run of the stream: each is answered with its own position
    last = ok(batch(client, headers, sent[:2]))
    assert last.json()["positions"] == [1, 3]
    assert head(client, headers) == 5
    assert counts(client, headers, again) == [("a", "2026-11-28", 5)]


def test_a_retry_after_midnight_or_days_later_answers_the_original_events(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    clock.now = datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC)
    sent = [
        {"name": "a", "platform": "web", "id": "late-1"},
        {"name": "a", "platform": "web", "id": "late-2"},
        {"name": "b", "platform": "web", "id": "late-3"},
    ]
    first = ok(batch(client, headers, sent)).json()
    single = ok(track(client, headers, "c", id="late-4")).json()
    clock.now += timedelta(seconds=2)  # the next day: the retry's streams are not the originals'
    assert ok(batch(client, headers, sent)).json() == first
    assert ok(track(client, headers, "c", id="late-4")).json() == single
    clock.now += timedelta(days=3)  # an offline queue flushed days later
    assert ok(batch(client, headers, [*sent, {"name": "b", "platform": "web", "id": "new"}])).json()[
        "positions"
    ] == [*first["positions"], 5]
    assert ok(track(client, headers, "c", id="late-4")).json() == single
    last = ok(track(client, headers, "a"))
    assert head(client, headers) == 6
    assert counts(client, headers, last) == [
        ("a", "2026-11-28", 2),
        ("b", "2026-11-28", 1),
        ("c", "2026-11-28", 1),
        ("a", "2026-12-02", 1),
        ("b", "2026-12-02", 1),
    ]


def test_an_id_reused_for_an_event_of_another_name_is_409(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(track(client, headers, "a", id="same"))
    assert_problem(track(client, headers, "b", id="same"), 409, "spine.idempotency_conflict")
    assert head(client, headers) == 1


def test_an_id_sent_in_another_project_is_another_event(client: TestClient, headers: dict[str, str]) -> None:
    mine = ok(track(client, headers, id="e1"))
    other = {**provision_sync(client, project="p2"), "X-App-Id": "app1"}
    theirs = ok(track(client, other, id="e1"))
    assert theirs.json()["id"] != mine.json()["id"]
    assert len(events(client, other, theirs)) == 1
    assert len(events(client, headers, mine)) == 1


# Queries


def test_queries_by_time_range_run_and_name(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    written = []
    for hour, name, run in [
        (0, "view", "r1"),
        (1, "click", "r1"),
        (2, "view", "r2"),
        (3, "view", None),
        (4, "click", "r2"),
    ]:
        clock.now = START + timedelta(hours=hour)
        written.append(ok(track(client, headers, name, **({"run_id": run} if run else {}))))
    last = written[-1]

    def positions(**params: Any) -> list[int]:
        return [r["position"] for r in events(client, headers, last, **params)]

    assert positions() == [1, 2, 3, 4, 5]
    assert positions(name="view") == [1, 3, 4]
    assert positions(run_id="r1") == [1, 2]
    assert positions(run_id="r2", name="click") == [5]
    assert positions(name="vie") == []  # names are exact, never prefixes
    assert positions(run_id="r") == []
    at = [stamp(START + timedelta(hours=h)) for h in range(6)]
    assert positions(**{"from": at[1], "to": at[3]}) == [2, 3]  # from inclusive, to exclusive
    assert positions(**{"from": "2026-11-28T14:30:00+01:00"}) == [3, 4, 5]  # 13:30 UTC
    assert positions(**{"from": "2026-11-28T13:00:00"}) == [2, 3, 4, 5]  # no offset: UTC
    assert positions(to="2026-11-28T12:00:00Z") == []
    assert positions(**{"from": at[1], "to": at[5], "name": "view", "run_id": "r2"}) == [3]


def test_paging_with_a_cursor_reads_every_event_once(client: TestClient, headers: dict[str, str]) -> None:
    sent = [{"name": "a" if i % 2 else "b", "platform": "web"} for i in range(7)]
    last = ok(batch(client, headers, sent))
    of_a = [p for event, p in zip(sent, last.json()["positions"], strict=True) if event["name"] == "a"]
    for params in ({}, {"name": "a"}, {"app_id": "app1"}):
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = read(
                client, URL, headers, last, limit=2, **params, **({"after": cursor} if cursor else {})
            )
            seen += [r["position"] for r in page["events"]]
            pages += 1
            cursor = page["next"]
            if cursor is None:
                break
        expected = sorted(of_a) if params.get("name") else list(range(1, 8))
        assert seen == expected
        assert pages == (len(expected) + 1) // 2  # the last page is the one that says so: no empty page


def test_the_project_sees_every_app_and_surface_and_filters_by_them(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    add_app_and_surface(client, admin)
    for app, surface in [("app1", "web"), ("app2", "web"), ("app1", "ios"), ("app2", "ios")]:
        last = ok(track(client, {**headers, "X-App-Id": app, "X-Surface-Id": surface}, f"{app}.{surface}"))
    attributed = [
        (r["attribution"]["app_id"], r["attribution"]["surface_id"], r["name"])
        for r in events(client, headers, last)
    ]
    assert attributed == [
        ("app1", "web", "app1.web"),
        ("app2", "web", "app2.web"),
        ("app1", "ios", "app1.ios"),
        ("app2", "ios", "app2.ios"),
    ]
    reader = {**headers, "X-App-Id": "app2", "X-Surface-Id": "ios"}  # whoever reads, the project's events
    assert [r["name"] for r in events(client, reader, last)] == [n for _, _, n in attributed]
    assert [r["name"] for r in events(client, reader, last, app_id="app2")] == ["app2.web", "app2.ios"]
    assert [r["name"] for r in events(client, reader, last, surface_id="web")] == ["app1.web", "app2.web"]
    assert [r["name"] for r in events(client, reader, last, app_id="app1", surface_id="ios")] == ["app1.ios"]


def test_a_filter_that_skips_many_events_pages_on_without_losing_any(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    add_app_and_surface(client, admin)
    ok(batch(client, headers, [{"name": "noise", "platform": "web"} for _ in range(60)]))
    last = ok(track(client, {**headers, "X-App-Id": "app2"}, "signal"))
    found: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"app_id": "app2", "limit": 1, **({"after": cursor} if cursor else {})}
        page = read(client, URL, headers, last, **params)
        found += [r["name"] for r in page["events"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert found == ["signal"]
    assert cursor is None


def test_counts_are_per_name_per_utc_day(client: TestClient, headers: dict[str, str], clock: Clock) -> None:
    plan = {"2026-11-27": {"view": 2}, "2026-11-28": {"view": 3, "click": 1}, "2026-11-30": {"click": 2}}
    last = None
    for day, per_name in plan.items():
        clock.now = datetime.fromisoformat(day).replace(hour=23, minute=59, tzinfo=UTC)
        for name, n in per_name.items():
            last = ok(batch(client, headers, [{"name": name, "platform": "web"}] * n))
    everything = [
        ("view", "2026-11-27", 2),
        ("click", "2026-11-28", 1),
        ("view", "2026-11-28", 3),
        ("click", "2026-11-30", 2),
    ]
    assert counts(client, headers, last) == everything
    assert counts(client, headers, last, name="view") == [e for e in everything if e[0] == "view"]
    assert counts(client, headers, last, name="vie") == []
    window = {"from": "2026-11-28", "to": "2026-11-30"}  # from inclusive, to exclusive
    assert counts(client, headers, last, **window) == everything[1:3]
    assert counts(client, headers, last, name="click", **window) == [("click", "2026-11-28", 1)]
    assert counts(client, headers, last, **{"from": "2026-11-29"}) == everything[3:]
    assert counts(client, headers, last, to="2026-11-28") == everything[:1]
    # the counts agree with the events of the day
    views = events(
        client, headers, last, name="view", **{"from": "2026-11-28T00:00:00Z", "to": "2026-11-29T00:00:00Z"}
    )
    assert len(views) == 3


def test_counts_page_by_cursor(client: TestClient, headers: dict[str, str], clock: Clock) -> None:
    for day in range(3):
        clock.now = START + timedelta(days=day)
        last = ok(batch(client, headers, [{"name": n, "platform": "web"} for n in ("a", "b")]))
    for params in ({}, {"name": "b"}):
        seen: list[tuple[str, str]] = []
        cursor = None
        while True:
            page = read(
                client, COUNTS, headers, last, limit=2, **params, **({"after": cursor} if cursor else {})
            )
            seen += [(c["day"], c["name"]) for c in page["counts"]]
            cursor = page["next"]
            if cursor is None:
                break
        days = ["2026-11-28", "2026-11-29", "2026-11-30"]
        names = [params["name"]] if params else ["a", "b"]
        assert seen == [(d, n) for d in days for n in names]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        (URL, {"after": "nope"}, 400, "cursor.invalid"),
        (URL, {"after": "2026-11-28T12:00:00.000000Z|1"}, 400, "cursor.invalid"),
        (URL, {"from": "yesterday"}, 422, "request.invalid"),
        (URL, {"to": "2026-13-01T00:00:00Z"}, 422, "request.invalid"),
        (URL, {"limit": 0}, 422, "request.invalid"),
        (URL, {"limit": 1001}, 422, "request.invalid"),
        (URL, {"name": "Bad Name"}, 422, "request.invalid"),
        (URL, {"run_id": "a b"}, 422, "request.invalid"),
        (URL, {"app_id": "a/b"}, 422, "request.invalid"),
        (COUNTS, {"after": "2026-11-28"}, 400, "cursor.invalid"),
        (COUNTS, {"after": "2026-11-28|Bad"}, 400, "cursor.invalid"),
        (COUNTS, {"from": "2026-11-28T00:00:00Z"}, 422, "request.invalid"),
        (COUNTS, {"to": "2026-02-30"}, 422, "request.invalid"),
        (COUNTS, {"limit": 1001}, 422, "request.invalid"),
        (COUNTS, {"name": "A"}, 422, "request.invalid"),
    ],
)
def test_bad_queries_are_refused(
    client: TestClient, headers: dict[str, str], path: str, params: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(client.get(path, params=params, headers=headers), status, code)


def test_a_min_position_never_written_is_400(client: TestClient, headers: dict[str, str]) -> None:
    ok(track(client, headers))
    for path in (URL, COUNTS):
        assert_problem(
            client.get(path, headers={**headers, "X-Spine-Min-Position": "2"}), 400, "cursor.invalid"
        )


# Ownership, isolation, routes, audit


def test_analytics_streams_and_types_are_written_through_the_route_only(
    client: TestClient, headers: dict[str, str]
) -> None:
    for stream, event_type in [("analytics:a:2026-11-28", "x.y"), ("mine", "analytics.event_recorded")]:
        body = {"stream": stream, "events": [{"type": event_type, "data": {"name": "a"}}]}
        assert_problem(client.post("/v1/events", json=body, headers=headers), 422, "request.invalid")
    assert head(client, headers) == 0


def test_the_events_are_in_the_log_one_stream_per_name_and_day(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(track(client, headers, "a"))
    ok(track(client, headers, "a"))
    stream = ok(client.get("/v1/streams/analytics:a:2026-11-28", headers=headers), 200).json()
    assert [(e["type"], e["version"]) for e in stream["events"]] == [
        ("analytics.event_recorded", 1),
        ("analytics.event_recorded", 2),
    ]
    meta = stream["events"][0]["meta"]
    assert (meta["app_id"], meta["surface_id"], meta["mode"]) == ("app1", "web", "lab")


def test_other_tenants_and_projects_neither_see_nor_write_it(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    mine = ok(batch(client, headers, [{"name": "a", "platform": "web", "run_id": "r1"}] * 2))
    other_project = {**provision_sync(client, project="p2"), "X-App-Id": "app1"}
    other_tenant = {**provision_sync(client, tenant="t2"), "X-App-Id": "app1"}
    for other in (other_project, other_tenant):
        assert read(client, URL, other) == {"events": [], "next": None}
        assert read(client, COUNTS, other) == {"counts": [], "next": None}
        assert read(client, URL, other, run_id="r1", name="a") == {"events": [], "next": None}
        theirs = ok(track(client, other, "a", run_id="r1"))
        [record] = events(client, other, theirs)
        assert record["attribution"]["project_id"] == other["X-Project-Id"]
        assert counts(client, other, theirs) == [("a", "2026-11-28", 1)]
    # writing into another tenant's project is refused: the tenant comes from the token
    assert_problem(track(client, {**headers, "X-Tenant-Id": "t2"}), 403, "auth.identity_override")
    ok(client.post("/v1/tenants/t2/projects", json={"project_id": "p9", "name": "p9"}, headers=admin))
    assert_problem(track(client, {**headers, "X-Project-Id": "p9"}), 400, "context.unknown_project")
    assert counts(client, headers, mine) == [("a", "2026-11-28", 2)]
    assert len(events(client, headers, mine)) == 2


def test_a_saas_tenant_without_an_analytics_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = {**provision_sync(client, tenant="t9", mode="saas"), "X-App-Id": "app1"}
    # The spine has no route either: answering analytics' code shows the view was asked first.
    assert_problem(track(client, saas), 503, "analytics_store.missing_route")
    assert_problem(
        batch(client, saas, [{"name": "a", "platform": "web"}]), 503, "analytics_store.missing_route"
    )
    assert_problem(client.get(URL, headers=saas), 503, "analytics_store.missing_route")
    assert_problem(client.get(COUNTS, headers=saas), 503, "analytics_store.missing_route")


def test_a_view_that_cannot_be_served_refuses_before_anything_is_appended(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    route = {
        "resource_kind": "analytics_store",
        "tenant_id": "t1",
        "env": "dev",
        "project_id": "p1",
        "backend_type": "redis",
        "config": {"url": "redis://127.0.0.1:6379/0"},
    }
    ok(client.put("/v1/routes", json=route, headers=admin), 200)
    assert_problem(track(client, headers), 503, "analytics_store.backend_unavailable")
    assert_problem(
        batch(client, headers, [{"name": "a", "platform": "web"}]), 503, "analytics_store.backend_unavailable"
    )
    assert head(client, headers) == 0


def test_lab_answers_say_the_view_fell_back_to_the_embedded_store(
    client: TestClient, headers: dict[str, str]
) -> None:
    answers = [ok(track(client, headers)), ok(batch(client, headers, [{"name": "a", "platform": "web"}]))]
    answers += [ok(client.get(path, headers=headers), 200) for path in (URL, COUNTS)]
    for answer in answers:
        assert "analytics_store.missing_route" in answer.headers["x-spine-warning"].split(", ")


def test_analytics_writes_are_in_the_audit(client: TestClient, headers: dict[str, str]) -> None:
    boss = {**provision_sync(client, user="boss", role="admin"), "X-App-Id": "app1"}
    ok(track(client, {**headers, "X-Request-Id": "track-1"}, "a"))
    last = ok(batch(client, {**headers, "X-Request-Id": "batch-1"}, [{"name": "b", "platform": "web"}] * 2))
    records = read(client, "/v1/audit", boss, last)["records"]
    seen = [(r["actor"], r["action"], r["resource"], r["request_id"]) for r in records]
    assert seen == [
        ("u1", "analytics.event_recorded", "analytics:a:2026-11-28", "track-1"),
        ("u1", "analytics.event_recorded", "analytics:b:2026-11-28", "batch-1"),
        ("u1", "analytics.event_recorded", "analytics:b:2026-11-28", "batch-1"),
    ]
    assert all(r["details"] is None for r in records)  # properties may be private: never copied


# Rebuild equals the incremental view, and both equal a model


def test_the_view_rebuilt_from_the_log_answers_exactly_as_the_incremental_one_and_as_a_model(
    client: TestClient, headers: dict[str, str], admin: dict[str, str], clock: Clock
) -> None:
    add_app_and_surface(client, admin)
    model: list[dict[str, Any]] = []  # what the view must hold, in order
    last = None
    for step in range(24):
        clock.now = START + timedelta(hours=7 * step)  # crosses several days
        sent = {
            **headers,
            "X-App-Id": ("app1", "app2")[step % 2],
            "X-Surface-Id": ("web", "ios")[step % 3 % 2],
        }
        body = {
            "name": ("view", "click", "buy")[step % 3],
            "platform": "web",
            **({"run_id": f"r{step % 4}"} if step % 4 else {}),
        }
        if step % 5 == 0:
            last = ok(batch(client, sent, [body, {**body, "name": "batch.extra"}]))
            bodies = [body, {**body, "name": "batch.extra"}]
        else:
            last = ok(track(client, sent, **body))
            bodies = [body]
        model += [
            {**b, "app_id": sent["X-App-Id"], "surface_id": sent["X-Surface-Id"], "time": stamp(clock.now)}
            for b in bodies
        ]
    queries: list[tuple[str, dict[str, Any]]] = [
        (URL, {}),
        (URL, {"name": "view"}),
        (URL, {"run_id": "r1"}),
        (URL, {"run_id": "r2", "name": "buy"}),
        (URL, {"app_id": "app2"}),
        (URL, {"surface_id": "ios"}),
        (URL, {"from": "2026-11-29T00:00:00Z", "to": "2026-12-01T00:00:00Z"}),
        (COUNTS, {}),
        (COUNTS, {"name": "click"}),
        (COUNTS, {"from": "2026-11-30", "to": "2026-12-02"}),
    ]

    def answers() -> list[Any]:
        return [read(client, path, headers, last, limit=1000, **params) for path, params in queries]

    served = answers()
    seen = [
        (r["name"], r.get("run_id"), r["attribution"]["app_id"], r["attribution"]["surface_id"], r["time"])
        for r in served[0]["events"]
    ]
    assert seen == [(m["name"], m.get("run_id"), m["app_id"], m["surface_id"], m["time"]) for m in model]
    per_day = Counter((m["name"], m["time"][:10]) for m in model)
    expected_counts = sorted(((day, name), n) for (name, day), n in per_day.items())
    assert [((c["day"], c["name"]), c["count"]) for c in served[7]["counts"]] == expected_counts
    assert [r["name"] for r in served[1]["events"]] == [m["name"] for m in model if m["name"] == "view"]
    assert len(served[3]["events"]) == sum(1 for m in model if m.get("run_id") == "r2" and m["name"] == "buy")
    assert len(served[4]["events"]) == sum(1 for m in model if m["app_id"] == "app2")

    rebuilt = ok(client.post("/v1/projections/analytics/rebuild?wait=true", headers=admin), 202).json()
    assert [(p["project_id"], p["generation"], p["rebuild"]["state"]) for p in rebuilt["projections"]] == [
        ("p1", 1, "swapped")
    ]
    assert answers() == served


async def test_concurrent_events_of_one_name_are_all_counted(http: httpx.AsyncClient) -> None:
    http.headers["X-App-Id"] = "app1"
    positions: list[int] = []

    async def tracker(n: int) -> None:
        answer = await http.post(URL, json={"name": "tap", "platform": "web", "properties": {"n": n}})
        assert answer.status_code == 201, answer.text
        positions.append(answer.json()["position"])

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(tracker, n)
    assert sorted(positions) == list(range(1, 31))
    wait = {"X-Spine-Min-Position": str(max(positions))}
    [count] = (await http.get(COUNTS, headers=wait)).json()["counts"]
    assert count["count"] == 30
    page = (await http.get(URL, params={"limit": 1000}, headers=wait)).json()
    assert sorted(r["properties"]["n"] for r in page["events"]) == list(range(30))

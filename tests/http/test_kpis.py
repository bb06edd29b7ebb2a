"""`/v1/kpis`: definitions (versioned), values attributed from the context, series of the rollups
the projection keeps; the rules, the bounds, the scope, and a rebuild that reads the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from tests.http.conftest import Clock
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/kpis"
NOW = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def ok(response: httpx.Response, status: int = 200) -> httpx.Response:
    assert response.status_code == status, response.text
    return response


def define(
    client: TestClient, headers: dict[str, str], name: str = "latency", **fields: Any
) -> httpx.Response:
    return client.put(f"{URL}/{name}", json={"unit": "ms", "aggregation": "sum", **fields}, headers=headers)


def record(client: TestClient, headers: dict[str, str], name: str = "latency", **body: Any) -> httpx.Response:
    return client.post(f"{URL}/{name}/values", json=body, headers=headers)


def at(**delta: float) -> str:
    return (NOW + timedelta(**delta)).isoformat().replace("+00:00", "Z")


def waited(headers: dict[str, str], answer: httpx.Response) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def series(
    client: TestClient, headers: dict[str, str], after: httpx.Response, name: str = "latency", **params: Any
) -> Any:
    return ok(client.get(f"{URL}/{name}/series", params=params, headers=waited(headers, after))).json()


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers)).json()["head"]
    return answer


def add_scope(client: TestClient, admin: dict[str, str], what: str, ident: str) -> None:
    ok(client.post(f"/v1/tenants/t1/{what}s", json={f"{what}_id": ident, "name": ident}, headers=admin), 201)


def figures(point: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(point[k] for k in ("start", "count", "sum", "min", "max", "last", "value"))


# Definitions


def test_a_definition_reads_back_with_its_version_as_etag_and_lists_by_name(
    client: TestClient, headers: dict[str, str]
) -> None:
    written = ok(
        define(client, headers, "signups", unit="users", aggregation="count", description="new users")
    )
    body = written.json()
    assert body == {"name": "signups", "version": 1, "position": body["position"]}
    assert (written.headers["etag"], written.headers["x-spine-position"]) == ('"1"', str(body["position"]))
    got = ok(client.get(f"{URL}/signups", headers=waited(headers, written)))
    assert got.headers["etag"] == '"1"'
    kpi = got.json()
    assert {k: kpi[k] for k in ("name", "unit", "aggregation", "description", "version", "updated_by")} == {
        "name": "signups", "unit": "users", "aggregation": "count", "description": "new users", "version": 1,
        "updated_by": "u1",
    }  # fmt: skip
    for name in ("b.two", "a:one", "c-three"):
        last = ok(define(client, headers, name))
    first = ok(client.get(URL, params={"limit": 2}, headers=waited(headers, last))).json()
    assert ([k["name"] for k in first["kpis"]], first["next"]) == (["a:one", "b.two"], "b.two")
    rest = ok(client.get(URL, params={"after": "b.two"}, headers=waited(headers, last))).json()
    assert ([k["name"] for k in rest["kpis"]], rest["next"]) == (["c-three", "signups"], None)


def test_a_definition_is_a_compare_and_set_with_if_match_or_expected_version(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers))
    second = ok(define(client, headers, aggregation="p95", expected_version=1))
    assert (second.json()["version"], second.headers["etag"]) == (2, '"2"')
    stale = assert_problem(define(client, headers, expected_version=1), 409, "kpi.version_conflict")
    assert (stale["expected_version"], stale["current_version"]) == (1, 2)
    matched = client.put(
        f"{URL}/latency", json={"unit": "s", "aggregation": "max"}, headers={**headers, "If-Match": '"2"'}
    )
    assert ok(matched).json()["version"] == 3
    again = client.put(
        f"{URL}/latency", json={"unit": "s", "aggregation": "max"}, headers={**headers, "If-Match": '"2"'}
    )
    assert_problem(again, 409, "kpi.version_conflict")
    assert_problem(define(client, headers, "fresh", expected_version=3), 409, "kpi.version_conflict")
    created = ok(define(client, headers, "fresh", expected_version="no_stream"))
    kpi = ok(client.get(f"{URL}/latency", headers=waited(headers, created))).json()
    assert (kpi["unit"], kpi["aggregation"], kpi["version"]) == ("s", "max", 3)


def test_an_undefined_kpi_is_404_everywhere_and_its_values_append_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert (
        assert_problem(client.get(f"{URL}/nothing", headers=headers), 404, "kpi.not_found")["name"]
        == "nothing"
    )
    assert_problem(client.get(f"{URL}/nothing/series", headers=headers), 404, "kpi.not_found")
    assert_problem(record(client, headers, "nothing", value=1), 404, "kpi.not_found")
    assert_problem(record(client, headers, "nothing", values=[{"value": 1}]), 404, "kpi.not_found")
    assert head(client, headers) == 0


def test_values_are_taken_as_soon_as_the_definition_is_in_the_log(
    client: TestClient, headers: dict[str, str]
) -> None:
    # no wait for the view between the definition and the values: the decision reads the log
    ok(define(client, headers, "fast"))
    taken = ok(record(client, headers, "fast", value=2), 201)
    assert series(client, headers, taken, "fast")["series"][0]["points"][0]["count"] == 1


DEFINITION_RULES = [
    ({"unit": "ms", "aggregation": "mean"}, "aggregation"),
    ({"aggregation": "sum"}, "unit"),
    ({"unit": "ms"}, "aggregation"),
    ({"unit": "has space", "aggregation": "sum"}, "unit"),
    ({"unit": "ms", "aggregation": "sum", "description": ""}, "description"),
    ({"unit": "ms", "aggregation": "sum", "description": "x" * 1025}, "description"),
    ({"unit": "ms", "aggregation": "sum", "units": "typo"}, "units"),
    ({"unit": "ms", "aggregation": "sum", "tenant_id": "t1"}, "tenant_id"),
]


@pytest.mark.parametrize(("body", "named"), DEFINITION_RULES)
def test_a_definition_breaking_a_rule_is_422_and_appends_nothing(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], named: str
) -> None:
    problem = assert_problem(client.put(f"{URL}/latency", json=body, headers=headers), 422, "request.invalid")
    assert named in problem["message"]
    assert head(client, headers) == 0


@pytest.mark.parametrize("name", ["Upper", "9lead", "has space", "a|b", "x" * 129, "caf%C3%A9"])
def test_invalid_kpi_names_are_422(client: TestClient, headers: dict[str, str], name: str) -> None:
    assert_problem(define(client, headers, name), 422, "request.invalid")
    assert_problem(record(client, headers, name, value=1), 422, "request.invalid")
    assert_problem(client.get(f"{URL}/{name}/series", headers=headers), 422, "request.invalid")


# Values and series


def test_series_roll_values_up_by_minute_hour_and_day(client: TestClient, headers: dict[str, str]) -> None:
    ok(define(client, headers, aggregation="max"))
    sent = [(at(minutes=-1, seconds=-10), 5.0), (at(minutes=-1, seconds=-5), 1.5), (at(seconds=-15), -2.0),
            (at(hours=-2), 10.0), (at(days=-1), 7.0)]  # fmt: skip
    for when, value in sent:
        last = ok(record(client, headers, value=value, at=when), 201)
    day = datetime(2026, 3, 10, tzinfo=UTC).isoformat()
    minutes = series(client, headers, last, bucket="minute", **{"from": day})
    assert (minutes["name"], minutes["unit"], minutes["aggregation"], minutes["bucket"]) == (
        "latency",
        "ms",
        "max",
        "minute",
    )
    assert (minutes["start"], minutes["end"]) == ("2026-03-10T00:00:00Z", "2026-03-10T12:30:15Z")
    [total] = minutes["series"]
    assert total["dimension_value"] is None
    assert [figures(p) for p in total["points"]] == [
        ("2026-03-10T10:30:00Z", 1, 10.0, 10.0, 10.0, 10.0, 10.0),
        ("2026-03-10T12:29:00Z", 2, 6.5, 1.5, 5.0, 1.5, 5.0),
        ("2026-03-10T12:30:00Z", 1, -2.0, -2.0, -2.0, -2.0, -2.0),
    ]
    hours = series(client, headers, last, bucket="hour", **{"from": at(days=-2)})["series"][0]["points"]
    assert [figures(p) for p in hours] == [
        ("2026-03-09T12:00:00Z", 1, 7.0, 7.0, 7.0, 7.0, 7.0),
        ("2026-03-10T10:00:00Z", 1, 10.0, 10.0, 10.0, 10.0, 10.0),
        ("2026-03-10T12:00:00Z", 3, 4.5, -2.0, 5.0, -2.0, 5.0),
    ]
    days = series(client, headers, last, bucket="day")["series"][0]["points"]  # default: 60 days back
    assert [figures(p) for p in days] == [
        ("2026-03-09T00:00:00Z", 1, 7.0, 7.0, 7.0, 7.0, 7.0),
        ("2026-03-10T00:00:00Z", 4, 14.5, -2.0, 10.0, -2.0, 10.0),
    ]
    assert (days[1]["p50"], days[1]["p95"]) == pytest.approx((1.5, 5.0), rel=0.01)
    # the range is [from, to): `to` at a bucket's start leaves that bucket out
    cut = series(client, headers, last, bucket="hour", **{"from": at(days=-2), "to": "2026-03-10T12:00:00Z"})
    assert [p["start"] for p in cut["series"][0]["points"]] == [
        "2026-03-09T12:00:00Z",
        "2026-03-10T10:00:00Z",
    ]


def test_last_is_the_value_of_the_latest_time_whatever_the_order_sent(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers, aggregation="last"))
    ok(record(client, headers, value=3, at=at(seconds=-5)), 201)
    ok(record(client, headers, value=1, at=at(seconds=-50)), 201)  # later sent, earlier in time
    last = ok(record(client, headers, value=2, at=at(seconds=-5)), 201)  # same time: the later position
    [point] = series(client, headers, last, bucket="day")["series"][0]["points"]
    assert (point["last"], point["value"], point["count"]) == (2.0, 2.0, 3)


def test_the_aggregation_of_the_current_definition_answers_value(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers, aggregation="sum"))
    for value in (1, 2, 3, 10):
        last = ok(record(client, headers, value=value), 201)
    expected = {"sum": 16.0, "count": 4, "min": 1.0, "max": 10.0, "last": 10.0, "p50": 2.0, "p95": 3.0}
    for aggregation, value in expected.items():
        last = ok(define(client, headers, aggregation=aggregation))
        [point] = series(client, headers, last, bucket="day")["series"][0]["points"]
        assert point["value"] == pytest.approx(value, rel=0.01), aggregation


def test_dimensions_split_values_by_app_surface_and_run_from_the_context(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    add_scope(client, admin, "surface", "mobile")
    ok(define(client, headers))
    ok(record(client, {**headers, "X-App-Id": "app1"}, value=1, run_id="run-a"), 201)
    ok(record(client, {**headers, "X-App-Id": "app2"}, value=2, run_id="run-b"), 201)
    ok(record(client, {**headers, "X-Surface-Id": "mobile", "X-App-Id": "app2"}, value=4), 201)
    last = ok(record(client, headers, values=[{"value": 8, "run_id": "run-a"}, {"value": 16}]), 201)

    def sums(dimension: str, **params: Any) -> dict[Any, float]:
        answer = series(client, headers, last, bucket="day", dimension=dimension, **params)
        assert answer["dimension"] == dimension
        return {s["dimension_value"]: sum(p["sum"] for p in s["points"]) for s in answer["series"]}

    assert sums("none") == {None: 31.0}
    assert sums("app") == {"app1": 1.0, "app2": 6.0}  # values sent without X-App-Id have no app
    assert sums("surface") == {"mobile": 4.0, "web": 27.0}
    assert sums("run") == {"run-a": 9.0, "run-b": 2.0}
    assert sums("run", value="run-a") == {"run-a": 9.0}
    assert sums("app", value="app9") == {"app9": 0.0}  # a value never seen: an empty series


def test_identity_never_comes_from_the_body(client: TestClient, headers: dict[str, str]) -> None:
    ok(define(client, headers))
    for claim in ({"app_id": "app2"}, {"surface_id": "mobile"}, {"tenant_id": "t2"}, {"user_id": "u9"}):
        answer = record(client, headers, value=1, **claim)
        assert answer.status_code in (403, 422), answer.text
    assert head(client, headers) == 1


def test_a_batch_is_checked_whole_and_answers_each_id(client: TestClient, headers: dict[str, str]) -> None:
    ok(define(client, headers))
    written = ok(
        record(client, headers, values=[{"value": 1}, {"value": 2, "id": "mine"}, {"value": 3}]), 201
    )
    body = written.json()
    assert len(body["ids"]) == len(set(body["ids"])) == 3
    assert written.headers["x-spine-position"] == str(body["position"]) == str(head(client, headers))
    bad = record(client, headers, values=[{"value": 1}, {"value": 2, "at": at(minutes=6)}])
    problem = assert_problem(bad, 422, "kpi.time_out_of_range")
    assert problem["field"] == "values[1].at"
    twice = record(client, headers, values=[{"value": 1, "id": "x"}, {"value": 2, "id": "x"}])
    assert "values[0]" in assert_problem(twice, 422, "request.invalid")["message"]
    too_many = record(client, headers, values=[{"value": n} for n in range(1001)])
    assert_problem(too_many, 422, "request.invalid")
    assert head(client, headers) == body["position"]  # nothing of the refused batches was appended
    [point] = series(client, headers, written, bucket="day")["series"][0]["points"]
    assert (point["count"], point["sum"]) == (3, 6.0)


def test_a_retry_with_the_same_id_is_counted_once(client: TestClient, headers: dict[str, str]) -> None:
    ok(define(client, headers))
    first = ok(record(client, headers, value=5, id="v1"), 201)
    again = ok(record(client, headers, value=5, id="v1"), 201)
    assert again.json() == first.json()
    batch = ok(record(client, headers, values=[{"value": 1, "id": "b1"}, {"value": 2, "id": "b2"}]), 201)
    resent = ok(record(client, headers, values=[{"value": 1, "id": "b1"}, {"value": 2, "id": "b2"}]), 201)
    assert resent.json() == batch.json()
    # part of it stored before: the stored one answers as it was, the new one is appended
    grown = ok(record(client, headers, values=[{"value": 2, "id": "b2"}, {"value": 4, "id": "b3"}]), 201)
    assert grown.json()["ids"][0] == batch.json()["ids"][1]
    [point] = series(client, headers, grown, bucket="day")["series"][0]["points"]
    assert (point["count"], point["sum"]) == (4, 12.0)
    # the same client id under another KPI is another value
    ok(define(client, headers, "other"))
    elsewhere = ok(record(client, headers, "other", value=5, id="v1"), 201)
    assert elsewhere.json()["ids"] != first.json()["ids"]


VALUE_RULES = [
    ({}, "value"),
    ({"value": None}, "value"),
    ({"value": 1e16}, "value"),
    ({"value": -1e16}, "value"),
    ({"value": 1, "values": [{"value": 1}]}, "not both"),
    ({"values": []}, "values"),
    ({"values": [{"value": 1, "app": "x"}]}, "app"),
    ({"value": 1, "run_id": "has space"}, "run_id"),
    ({"value": 1, "run_id": "r" * 257}, "run_id"),
    ({"value": 1, "id": "-bad"}, "id"),
    ({"value": 1, "at": "yesterday"}, "at"),
    ({"value": 1, "extra": True}, "extra"),
]


@pytest.mark.parametrize(("body", "named"), VALUE_RULES)
def test_a_value_breaking_a_rule_is_422_and_appends_nothing(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], named: str
) -> None:
    ok(define(client, headers))
    problem = assert_problem(record(client, headers, **body), 422, "request.invalid")
    assert named in problem["message"]
    assert head(client, headers) == 1


def test_a_value_is_taken_up_to_five_minutes_ahead_and_400_days_back(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers))
    for when in (at(minutes=5), at(days=-400), "2026-03-10T12:34:00"):  # no offset: UTC
        ok(record(client, headers, value=1, at=when), 201)
    for when in (at(minutes=5, seconds=1), at(days=-400, seconds=-1), "0001-01-01T00:00:00Z"):
        problem = assert_problem(record(client, headers, value=1, at=when), 422, "kpi.time_out_of_range")
        assert (problem["field"], problem["latest"]) == ("at", "2026-03-10T12:35:15.000000Z")
    assert head(client, headers) == 4


def test_series_queries_are_bounded_and_checked(client: TestClient, headers: dict[str, str]) -> None:
    defined = ok(define(client, headers))
    path = f"{URL}/latency/series"
    headers = waited(headers, defined)

    def problem(code: str, status: int = 422, **params: Any) -> dict[str, Any]:
        return assert_problem(client.get(path, params=params, headers=headers), status, code)

    assert (
        problem("kpi.range_too_large", bucket="minute", **{"from": at(days=-7), "to": at(days=0)})[
            "max_buckets"
        ]
        == 10_000
    )
    ok(client.get(path, params={"bucket": "minute", "from": at(minutes=-9999), "to": at()}, headers=headers))
    problem("kpi.range_too_large", bucket="hour", **{"from": "2020-01-01T00:00:00Z"})
    problem("kpi.invalid_range", **{"from": at(), "to": at()})
    problem("kpi.invalid_range", **{"from": at(hours=1), "to": at()})
    ok(
        client.get(
            path,
            params={"bucket": "day", "from": "0001-01-01T00:00:00Z", "to": "0001-01-02T00:00:00Z"},
            headers=headers,
        )
    )
    problem("kpi.invalid_range", bucket="day", to="0001-01-02T00:00:00Z")  # 60 days before: no such time
    problem(
        "kpi.invalid_range", bucket="day", **{"from": "9999-12-31T00:00:00Z", "to": "9999-12-31T23:59:59.5Z"}
    )
    assert "from" in problem("request.invalid", **{"from": "last tuesday"})["message"]
    problem("request.invalid", bucket="week")
    problem("request.invalid", dimension="user")
    problem("request.invalid", value="app1")  # a value needs a dimension
    problem("request.invalid", dimension="app", value="has space")
    problem("request.invalid", dimension="run", value="r" * 257)


def test_a_dimension_with_too_many_values_asks_for_one(client: TestClient, headers: dict[str, str]) -> None:
    ok(define(client, headers))
    ok(record(client, headers, values=[{"value": 1, "run_id": f"run-{n:03d}"} for n in range(100)]), 201)
    full = series(client, headers, ok(record(client, headers, value=1), 201), bucket="day", dimension="run")
    assert [s["dimension_value"] for s in full["series"]] == [f"run-{n:03d}" for n in range(100)]
    last = ok(record(client, headers, value=1, run_id="run-100"), 201)
    answer = client.get(f"{URL}/latency/series", params={"dimension": "run"}, headers=waited(headers, last))
    assert assert_problem(answer, 422, "kpi.too_many_series")["max_series"] == 100
    one = series(client, headers, last, bucket="day", dimension="run", value="run-100")
    assert [(s["dimension_value"], len(s["points"])) for s in one["series"]] == [("run-100", 1)]


def test_kpi_events_are_written_through_its_routes_only(client: TestClient, headers: dict[str, str]) -> None:
    forged = {"type": "kpi.value_recorded", "data": {"name": "latency", "value": 1, "at": at()}}
    for body in (
        {"stream": "kpi:values:latency", "events": [{"type": "x"}]},
        {"stream": "elsewhere", "events": [forged]},
    ):
        problem = assert_problem(
            client.post("/v1/events", json=body, headers=headers), 422, "request.invalid"
        )
        assert "/v1/kpis/{name}" in problem["message"]
    assert head(client, headers) == 0


# Scope


def test_another_tenant_or_project_neither_sees_the_kpi_nor_adds_to_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(define(client, headers))
    mine = ok(record(client, headers, value=1), 201)
    for other in (provision_sync(client, tenant="t2"), provision_sync(client, project="p2")):
        assert_problem(client.get(f"{URL}/latency", headers=other), 404, "kpi.not_found")
        assert_problem(record(client, other, value=100), 404, "kpi.not_found")
        assert ok(client.get(URL, headers=other)).json()["kpis"] == []
        theirs = ok(define(client, other, aggregation="max"))
        assert theirs.json()["version"] == 1
        added = ok(record(client, other, value=100), 201)
        [point] = series(client, other, added, bucket="day")["series"][0]["points"]
        assert (point["count"], point["sum"], point["value"]) == (1, 100.0, 100.0)
    [point] = series(client, headers, mine, bucket="day")["series"][0]["points"]
    assert (point["count"], point["sum"]) == (1, 1.0)
    assert ok(client.get(f"{URL}/latency", headers=headers)).json()["aggregation"] == "sum"


# The view: rebuilt from the log, it reads the same


def test_a_rebuilt_view_reads_the_same(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    add_scope(client, admin, "app", "app2")
    ok(define(client, headers, aggregation="p95"))
    ok(define(client, headers, "count", aggregation="count"))
    for n in range(40):
        app = {"X-App-Id": "app1" if n % 3 else "app2"}
        last = ok(
            record(client, {**headers, **app}, value=n * 1.5 - 20, at=at(minutes=-7 * n), run_id=f"r{n % 4}"),
            201,
        )
        last = ok(record(client, headers, "count", value=1, at=at(hours=-n)), 201)

    def everything() -> list[Any]:
        answers = []
        for name in ("latency", "count"):
            for bucket in ("minute", "hour", "day"):
                for dimension in ("none", "app", "surface", "run"):
                    span = {"minute": 9000, "hour": 1000, "day": 30}[bucket]
                    params = {"bucket": bucket, "dimension": dimension, "from": at(**{f"{bucket}s": -span})}
                    answers.append(series(client, headers, last, name, **params))
        return answers

    before = everything()
    assert sum(len(s["points"]) for a in before for s in a["series"]) > 100
    answer = client.post("/v1/projections/kpis/rebuild?wait=true", headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert (view["name"], view["generation"], view["rebuild"]["state"]) == ("kpis", 1, "swapped")
    assert everything() == before


# Routing: a missing route is loud


def test_a_saas_tenant_without_a_kpi_route_is_refused_before_anything_is_appended(client: TestClient) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    for response in (
        define(client, saas),
        record(client, saas, value=1),
        client.get(f"{URL}/latency", headers=saas),
        client.get(URL, headers=saas),
        client.get(f"{URL}/latency/series", headers=saas),
    ):
        problem = assert_problem(response, 503, "kpi_store.missing_route")
        assert (problem["resource_kind"], response.headers["retry-after"]) == ("kpi_store", "1")


def test_a_lab_tenant_without_a_kpi_route_is_served_with_a_warning(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    written = ok(define(client, headers))
    value = ok(record(client, headers, value=1), 201)
    answers = [written, value, ok(client.get(f"{URL}/latency/series", headers=waited(headers, value)))]
    for answer in answers:
        assert "kpi_store.missing_route" in answer.headers["x-spine-warning"]
    route = {"resource_kind": "kpi_store", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "kpi-views.db"}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))
    routed = ok(record(client, headers, value=2), 201)
    assert "kpi_store" not in routed.headers.get("x-spine-warning", "")
    # a store of its own, built from the log: both values are there
    [point] = series(client, headers, routed, bucket="day")["series"][0]["points"]
    assert (point["count"], point["sum"]) == (2, 3.0)

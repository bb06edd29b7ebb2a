"""`/v1/flags`: versioned, audited feature flags of a project, evaluated for the caller's context."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync

URL = "/v1/flags"
CHECKOUT = {
    "type": "string",
    "default": "classic",
    "enabled": True,
    "rules": [
        {"users": ["u2"], "value": "beta-user"},
        {"apps": ["app1"], "surfaces": ["web"], "value": "web-app"},
        {"envs": ["prod"], "value": "prod-only"},
    ],
    "description": "the checkout flow",
}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return admin_headers_sync(client)


def ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code in (200, 201), response.text
    return response


def put(
    client: TestClient, headers: dict[str, str], key: str = "checkout", reason: str = "why", **fields: Any
) -> httpx.Response:
    body = {"type": "bool", "default": False, **fields, "reason": reason}
    return client.put(f"{URL}/{key}", json=body, headers=headers)


def waited(headers: dict[str, str], answer: httpx.Response) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def evaluated(client: TestClient, headers: dict[str, str], written: httpx.Response, **params: Any) -> Any:
    return ok(client.get(f"{URL}/evaluate", params=params, headers=waited(headers, written))).json()


def head(client: TestClient, headers: dict[str, str]) -> int:
    answer: int = ok(client.get("/v1/events", headers=headers)).json()["head"]
    return answer


# Writes, reads, versions, history


def test_a_written_flag_reads_back_whole_with_who_why_and_its_version(
    client: TestClient, headers: dict[str, str]
) -> None:
    written = ok(put(client, headers, reason="launch the new checkout", **CHECKOUT))
    body = written.json()
    assert body == {"key": "checkout", "version": 1, "position": body["position"]}
    assert (written.headers["x-spine-position"], written.headers["etag"]) == (str(body["position"]), '"1"')
    got = ok(client.get(f"{URL}/checkout", headers=waited(headers, written)))
    assert got.headers["etag"] == '"1"'
    flag = got.json()
    assert {field: flag[field] for field in CHECKOUT} == CHECKOUT
    assert (flag["key"], flag["version"], flag["position"]) == ("checkout", 1, body["position"])
    assert (flag["changed_by"], flag["reason"]) == ("u1", "launch the new checkout")
    assert flag["changed_at"].endswith("Z")


def test_a_stale_version_is_409_and_if_match_is_a_compare_and_set(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(put(client, headers))
    ok(put(client, headers, expected_version=1))
    problem = assert_problem(put(client, headers, expected_version=1), 409, "feature_flags.version_conflict")
    assert (problem["expected_version"], problem["current_version"]) == (1, 2)
    stale = client.put(f"{URL}/checkout", json={"type": "bool", "default": True, "reason": "r"},
                       headers={**headers, "If-Match": '"1"'})  # fmt: skip
    assert_problem(stale, 409, "feature_flags.version_conflict")
    matched = ok(client.put(f"{URL}/checkout", json={"type": "bool", "default": True, "reason": "r"},
                            headers={**headers, "If-Match": '"2"'}))  # fmt: skip
    assert matched.json()["version"] == 3
    created = ok(put(client, headers, "fresh", expected_version="no_stream"))
    assert created.json()["version"] == 1
    assert_problem(
        put(client, headers, "fresh", expected_version="no_stream"), 409, "feature_flags.version_conflict"
    )
    assert ok(client.get(f"{URL}/checkout", headers=waited(headers, created))).json()["default"] is True


def test_a_delete_says_why_leaves_history_and_a_later_write_brings_the_key_back(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(put(client, headers, reason="on"))
    assert_problem(client.delete(f"{URL}/checkout", headers=headers), 422, "request.invalid")  # no reason
    assert_problem(client.delete(f"{URL}/checkout", params={"reason": "x", "expected_version": 5}, headers=headers),
                   409, "feature_flags.version_conflict")  # fmt: skip
    gone = ok(client.delete(f"{URL}/checkout", params={"reason": "retired"}, headers=headers))
    assert (gone.json()["status"], gone.json()["version"]) == ("deleted", 2)
    problem = assert_problem(
        client.get(f"{URL}/checkout", headers=waited(headers, gone)), 404, "feature_flags.not_found"
    )
    assert (problem["deleted"], problem["version"]) == (True, 2)
    again = assert_problem(
        client.delete(f"{URL}/checkout", params={"reason": "x"}, headers=headers),
        404,
        "feature_flags.not_found",
    )
    assert again["deleted"] is True
    back = ok(put(client, headers, reason="back", default=True))
    assert back.json()["version"] == 3
    history = ok(client.get(f"{URL}/checkout/history", headers=waited(headers, back))).json()
    assert [(v["version"], v["change"], v["reason"], v["changed_by"]) for v in history["versions"]] == [
        (1, "changed", "on", "u1"),
        (2, "deleted", "retired", "u1"),
        (3, "changed", "back", "u1"),
    ]
    assert history["versions"][1]["flag"] is None
    assert (history["versions"][0]["flag"]["default"], history["versions"][2]["flag"]["default"]) == (
        False,
        True,
    )
    paged = ok(client.get(f"{URL}/checkout/history", params={"limit": 2}, headers=headers)).json()
    assert ([v["version"] for v in paged["versions"]], paged["next"]) == ([1, 2], 2)
    rest = ok(client.get(f"{URL}/checkout/history", params={"after": 2}, headers=headers)).json()
    assert ([v["version"] for v in rest["versions"]], rest["next"]) == ([3], None)


def test_unknown_flags_are_404(client: TestClient, headers: dict[str, str]) -> None:
    for response in (
        client.get(f"{URL}/nope", headers=headers),
        client.get(f"{URL}/nope/history", headers=headers),
        client.delete(f"{URL}/nope", params={"reason": "x"}, headers=headers),
    ):
        assert assert_problem(response, 404, "feature_flags.not_found")["deleted"] is False
    assert head(client, headers) == 0


def test_the_list_pages_through_live_flags_by_key(client: TestClient, headers: dict[str, str]) -> None:
    for key in ("d", "a", "c", "b"):
        last = ok(put(client, headers, key))
    last = ok(client.delete(f"{URL}/c", params={"reason": "gone"}, headers=headers))
    first = ok(client.get(URL, params={"limit": 2}, headers=waited(headers, last))).json()
    assert ([f["key"] for f in first["flags"]], first["next"]) == (["a", "b"], "b")
    rest = ok(client.get(URL, params={"after": "b"}, headers=headers)).json()
    assert ([f["key"] for f in rest["flags"]], rest["next"]) == (["d"], None)
    assert_problem(client.get(URL, params={"after": "a,b"}, headers=headers), 400, "cursor.invalid")


# Rules of a definition


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"default": "no"}, "default"),
        ({"default": None}, "default"),
        ({"rules": [{"value": True}, {"value": 1}]}, "rules[1].value"),
        ({"type": "number", "default": "1"}, "default"),
        ({"type": "string", "default": "x", "rules": [{"value": {"a": 1}}]}, "rules[0].value"),
        ({"type": "json", "default": ["x" * 17000]}, "default"),
    ],
)
def test_a_value_not_of_the_flags_type_is_422_naming_it_and_appends_nothing(
    client: TestClient, headers: dict[str, str], fields: dict[str, Any], field: str
) -> None:
    problem = assert_problem(put(client, headers, **fields), 422, "feature_flags.invalid_value")
    assert problem["field"] == field
    assert field in problem["message"]
    assert head(client, headers) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"type": "bool", "default": False},  # no reason
        {"type": "bool", "default": False, "reason": ""},
        {"type": "bool", "default": False, "reason": "x" * 501},
        {"type": "yes-no", "default": False, "reason": "r"},
        {"type": "bool", "reason": "r"},
        {"type": "bool", "default": False, "reason": "r", "rules": [{"value": True}] * 101},
        {"type": "bool", "default": False, "reason": "r", "rules": [{"rollout": 10.001, "value": True}]},
        {"type": "bool", "default": False, "reason": "r", "rules": [{"rollout": 101, "value": True}]},
        {"type": "bool", "default": False, "reason": "r", "rules": [{"users": ["a b"], "value": True}]},
        {"type": "bool", "default": False, "reason": "r", "rules": [{"users": ["u"] * 1001, "value": True}]},
        {"type": "bool", "default": False, "reason": "r", "colour": "blue"},
    ],
)
def test_a_definition_breaking_a_bound_is_422(
    client: TestClient, headers: dict[str, str], body: dict[str, Any]
) -> None:
    assert_problem(client.put(f"{URL}/checkout", json=body, headers=headers), 422, "request.invalid")
    assert head(client, headers) == 0


def test_values_at_the_bounds_are_accepted(client: TestClient, headers: dict[str, str]) -> None:
    rules = [{"users": [f"u{n}" for n in range(1000)], "rollout": 12.34, "value": True}] + [
        {"value": False}
    ] * 99
    ok(put(client, headers, reason="r" * 500, rules=rules))
    ok(put(client, headers, "json", type="json", default={"v": "x" * 16000}))


@pytest.mark.parametrize("key", ["-x", "a:b", "a,b", "a b", "k" * 129, "évaluer"])
def test_invalid_keys_are_422(client: TestClient, headers: dict[str, str], key: str) -> None:
    assert_problem(put(client, headers, key), 422, "request.invalid")
    assert_problem(client.get(f"{URL}/{key}", headers=headers), 422, "request.invalid")


def test_the_route_names_are_not_flag_keys(client: TestClient, headers: dict[str, str]) -> None:
    # the routes beside `/v1/flags/{key}` take their names: no flag can be written under them
    for key in ("evaluate", "stream"):
        assert assert_problem(put(client, headers, key), 405, "http.method_not_allowed")
        assert_problem(
            client.delete(f"{URL}/{key}", params={"reason": "r"}, headers=headers),
            405,
            "http.method_not_allowed",
        )
    assert head(client, headers) == 0


def test_flag_events_are_written_through_the_flag_routes_only(
    client: TestClient, headers: dict[str, str]
) -> None:
    forged = {"type": "flag.changed", "data": {"key": "f", "type": "bool", "default": True}}
    for body in (
        {"stream": "flag:f", "events": [{"type": "x"}]},
        {"stream": "elsewhere", "events": [forged]},
    ):
        problem = assert_problem(
            client.post("/v1/events", json=body, headers=headers), 422, "request.invalid"
        )
        assert "/v1/flags/{key}" in problem["message"]
    assert head(client, headers) == 0


# Evaluation for the caller's context


def test_evaluation_follows_the_rules_for_the_callers_context(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    for kind, ident in (("surface", "ios"), ("member", "u2")):
        body = (
            {"user_id": ident, "role": "member"} if kind == "member" else {f"{kind}_id": ident, "name": ident}
        )
        ok(client.post(f"/v1/tenants/t1/{kind}s", json=body, headers=admin))
    written = ok(put(client, headers, **CHECKOUT))
    u2 = provision_sync(client, user="u2")
    cases = [
        (headers, {"value": "classic", "reason": "default", "version": 1}),  # dev, web, no app
        ({**headers, "X-App-Id": "app1"}, {"value": "web-app", "reason": "rule", "rule": 1, "version": 1}),
        (
            {**headers, "X-App-Id": "app1", "X-Surface-Id": "ios"},
            {"value": "classic", "reason": "default", "version": 1},
        ),
        ({**u2, "X-App-Id": "app1"}, {"value": "beta-user", "reason": "rule", "rule": 0, "version": 1}),
    ]
    for caller, expected in cases:
        assert evaluated(client, caller, written, keys="checkout")["flags"] == {"checkout": expected}
    off = ok(put(client, headers, **{**CHECKOUT, "enabled": False}))
    answer = evaluated(client, u2, off, keys="checkout")
    assert answer["flags"]["checkout"] == {"value": "classic", "reason": "off", "version": 2}
    assert answer["position"] == int(off.headers["x-spine-position"])


def test_an_env_rule_matches_the_partitions_env(client: TestClient, headers: dict[str, str]) -> None:
    rules = [{"envs": ["production"], "value": "prod"}, {"envs": ["development"], "value": "dev"}]
    written = ok(put(client, headers, "env", type="string", default="none", rules=rules))
    assert evaluated(client, headers, written, keys="env")["flags"]["env"]["value"] == "dev"


def test_unknown_keys_answer_not_found_in_the_map_and_absent_keys_mean_every_flag(
    client: TestClient, headers: dict[str, str]
) -> None:
    ok(put(client, headers, "a", default=True))
    ok(put(client, headers, "b", type="number", default=3))
    ok(put(client, headers, "gone"))
    last = ok(client.delete(f"{URL}/gone", params={"reason": "r"}, headers=headers))
    asked = evaluated(client, headers, last, keys="b,nope,gone,b")["flags"]
    assert asked == {
        "b": {"value": 3, "reason": "default", "version": 1},
        "nope": {"value": None, "reason": "not_found"},
        "gone": {"value": None, "reason": "not_found"},
    }
    every = evaluated(client, headers, last)
    assert (sorted(every["flags"]), every["next"]) == (["a", "b"], None)
    paged = evaluated(client, headers, last, limit=1)
    assert (list(paged["flags"]), paged["next"]) == (["a"], "a")
    assert list(evaluated(client, headers, last, after="a")["flags"]) == ["b"]


def test_bad_evaluation_queries_are_refused(client: TestClient, headers: dict[str, str]) -> None:
    too_many = ",".join(f"k{n}" for n in range(101))
    for params in ({"keys": too_many}, {"keys": "a,,b"}, {"keys": "a:b"}):
        assert_problem(client.get(f"{URL}/evaluate", params=params, headers=headers), 422, "request.invalid")
    assert_problem(
        client.get(f"{URL}/evaluate", params={"after": "a b"}, headers=headers), 400, "cursor.invalid"
    )


@pytest.mark.parametrize(
    "claim",
    [{"user_id": "u2"}, {"tenant_id": "t2"}, {"project_id": "p2"}, {"surface_id": "ios"}, {"app_id": "app1"},
     {"env": "prod"}, {"user_id": ["u1", "u2"]}],
)  # fmt: skip
def test_identity_in_the_query_is_refused_and_audited_unless_it_repeats_the_caller(
    client: TestClient, headers: dict[str, str], claim: dict[str, Any]
) -> None:
    ok(put(client, headers, default=True))
    problem = assert_problem(
        client.get(f"{URL}/evaluate", params={"keys": "checkout", **claim}, headers=headers),
        403,
        "auth.identity_override",
    )
    assert (problem["field"], problem["source"]) == (next(iter(claim)), "query")
    boss = provision_sync(client, user="boss", role="admin")
    trail = ok(client.get("/v1/audit", params={"action": "auth.violation"}, headers=boss)).json()["records"]
    assert [r["details"]["source"] for r in trail] == ["query"]


def test_identity_in_the_query_that_repeats_the_caller_is_accepted(
    client: TestClient, headers: dict[str, str]
) -> None:
    written = ok(put(client, headers, default=True))
    same = {"user_id": "u1", "tenant_id": "t1", "project_id": "p1", "surface_id": "web", "env": "development"}
    answer = evaluated(
        client, {**headers, "X-App-Id": "app1"}, written, keys="checkout", app_id="app1", **same
    )
    assert answer["flags"]["checkout"]["value"] is True


# Scope: tenant, project


def test_another_tenant_or_project_neither_sees_nor_writes_the_flag(
    client: TestClient, headers: dict[str, str]
) -> None:
    mine = ok(put(client, headers, default=True, reason="mine"))
    for other in (provision_sync(client, tenant="t2"), provision_sync(client, project="p2")):
        assert_problem(client.get(f"{URL}/checkout", headers=other), 404, "feature_flags.not_found")
        assert ok(client.get(URL, headers=other)).json()["flags"] == []
        assert ok(client.get(f"{URL}/evaluate", params={"keys": "checkout"}, headers=other)).json()[
            "flags"
        ] == {"checkout": {"value": None, "reason": "not_found"}}
        assert_problem(
            client.delete(f"{URL}/checkout", params={"reason": "x"}, headers=other),
            404,
            "feature_flags.not_found",
        )
        stale = put(client, other, expected_version=1)
        assert assert_problem(stale, 409, "feature_flags.version_conflict")["current_version"] == 0
        theirs = ok(put(client, other, default=False, reason="theirs"))
        assert theirs.json()["version"] == 1
        assert ok(client.get(f"{URL}/checkout", headers=waited(other, theirs))).json()["reason"] == "theirs"
    flag = ok(client.get(f"{URL}/checkout", headers=waited(headers, mine))).json()
    assert (flag["default"], flag["version"], flag["reason"]) == (True, 1, "mine")


def test_identity_in_the_body_may_repeat_the_caller_never_redirect_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    for claim in ({"project_id": "p2"}, {"tenant_id": "t2"}, {"user_id": "u9"}):
        assert_problem(put(client, headers, **claim), 403, "auth.identity_override")
    assert head(client, headers) == 0
    same = ok(put(client, headers, project_id="p1", tenant_id="t1", user_id="u1"))
    stored = ok(client.get("/v1/streams/flag:checkout", headers=headers)).json()["events"][0]["data"]
    assert "tenant_id" not in stored
    assert same.json()["version"] == 1


# Routing: a missing route is loud


def test_a_saas_tenant_without_a_flags_route_is_refused_before_anything_is_appended(
    client: TestClient,
) -> None:
    saas = provision_sync(client, tenant="t9", mode="saas")
    for response in (
        put(client, saas),
        client.get(f"{URL}/checkout", headers=saas),
        client.get(URL, headers=saas),
        client.get(f"{URL}/checkout/history", headers=saas),
        client.get(f"{URL}/evaluate", headers=saas),
        client.get(f"{URL}/stream", headers=saas),
        client.delete(f"{URL}/checkout", params={"reason": "x"}, headers=saas),
    ):
        problem = assert_problem(response, 503, "feature_flags.missing_route")
        assert (problem["resource_kind"], response.headers["retry-after"]) == ("feature_flags", "1")


def test_a_lab_tenant_without_a_flags_route_is_served_with_a_warning(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    written = ok(put(client, headers))
    answers = [
        written,
        ok(client.get(f"{URL}/checkout", headers=waited(headers, written))),
        ok(client.get(URL, headers=headers)),
        ok(client.get(f"{URL}/evaluate", headers=headers)),
        ok(client.delete(f"{URL}/checkout", params={"reason": "x"}, headers=headers)),
    ]
    for answer in answers:
        assert "feature_flags.missing_route" in answer.headers["x-spine-warning"]
    route = {"resource_kind": "feature_flags", "tenant_id": "t1", "env": "dev", "backend_type": "sqlite",
             "config": {"path": "flag-views.db"}}  # fmt: skip
    ok(client.put("/v1/routes", json=route, headers=admin))
    routed = ok(put(client, headers, reason="routed"))
    assert "feature_flags" not in routed.headers.get("x-spine-warning", "")
    read = ok(client.get(f"{URL}/checkout", headers=waited(headers, routed)))
    assert "feature_flags" not in read.headers.get("x-spine-warning", "")
    assert read.json()["reason"] == "routed"


# The view: rebuilt from the log, it reads the same


def test_a_rebuilt_view_reads_the_same(
    client: TestClient, headers: dict[str, str], admin: dict[str, str]
) -> None:
    ok(put(client, headers, "a", default=True))
    ok(put(client, headers, "b", type="string", default="x", rules=[{"users": ["u1"], "value": "me"}]))
    ok(put(client, headers, "a", reason="again"))
    last = ok(client.delete(f"{URL}/b", params={"reason": "gone"}, headers=headers))

    def snapshot() -> list[Any]:
        h = waited(headers, last)
        return [
            ok(client.get(URL, headers=h)).json(),
            ok(client.get(f"{URL}/a", headers=h)).json(),
            [ok(client.get(f"{URL}/{k}/history", headers=h)).json() for k in ("a", "b")],
            ok(client.get(f"{URL}/evaluate", params={"keys": "a,b"}, headers=h)).json()["flags"],
        ]

    before = snapshot()
    answer = client.post("/v1/projections/flags/rebuild?wait=true", headers=admin)
    assert answer.status_code == 202, answer.text
    [view] = answer.json()["projections"]
    assert (view["name"], view["generation"], view["rebuild"]["state"]) == ("flags", 1, "swapped")
    assert snapshot() == before


def test_flag_writes_are_in_the_audit_view(client: TestClient, headers: dict[str, str]) -> None:
    ok(put(client, headers))
    gone = ok(client.delete(f"{URL}/checkout", params={"reason": "r"}, headers=headers))
    boss = provision_sync(client, user="boss", role="admin")
    answer = ok(client.get("/v1/audit", params={"limit": 1000}, headers=waited(boss, gone))).json()
    found = [(r["action"], r["resource"], r["actor"]) for r in answer["records"]]
    assert found == [("flag.changed", "flag:checkout", "u1"), ("flag.deleted", "flag:checkout", "u1")]

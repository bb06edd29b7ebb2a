"""`/v1/budget`: usage and limits decided on the unit's stream; totals per period and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient

from tests.http.conftest import Clock
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))


def use(client: TestClient, headers: dict[str, str], amount: float, unit: str = "tokens", **body: Any) -> Any:
    return client.post("/v1/budget/usage", json={"amount": amount, "unit": unit, **body}, headers=headers)


def set_limit(
    client: TestClient,
    headers: dict[str, str],
    period: str,
    limit: float,
    *,
    hard: bool,
    unit: str = "tokens",
) -> Any:
    body = {"period": period, "unit": unit, "limit": limit, "hard": hard}
    return client.put("/v1/budget/limits", json=body, headers=headers)


def waited(headers: dict[str, str], answer: Any) -> dict[str, str]:
    return {**headers, "X-Spine-Min-Position": answer.headers["x-spine-position"]}


def budget(client: TestClient, headers: dict[str, str], write: Any, **params: Any) -> dict[str, Any]:
    """A read-your-writes read of every unit's budget, by unit."""
    answer = client.get("/v1/budget", params=params, headers=waited(headers, write))
    assert answer.status_code == 200, answer.text
    return {unit["unit"]: unit for unit in answer.json()["units"]}


def ledger(client: TestClient, headers: dict[str, str], write: Any, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/budget/ledger", params=params, headers=waited(headers, write))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_usage_is_201_with_its_position_and_the_totals_after_it(
    client: TestClient, headers: dict[str, str]
) -> None:
    answer = use(client, headers, 3, cost_usd=0.02, model="gpt-x", run_id="run-1")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert answer.headers["x-spine-position"] == str(body["position"])
    assert "budget_store.missing_route" in answer.headers["x-spine-warning"]  # lab fallback, said loudly
    assert (body["unit"], body["amount"], body["cost_usd"], body["model"], body["run_id"]) == (
        "tokens", 3, 0.02, "gpt-x", "run-1",
    )  # fmt: skip
    assert body["totals"]["day"] == {"key": "2026-11-28", "amount": 3, "cost_usd": 0.02, "count": 1}
    assert body["totals"]["total"]["amount"] == 3
    assert (body["warnings"], body["replayed"]) == ([], False)


def test_a_limit_answers_its_position_and_the_unit_limits(
    client: TestClient, headers: dict[str, str]
) -> None:
    set_limit(client, headers, "day", 100, hard=False)
    answer = set_limit(client, headers, "total", 1000, hard=True)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.headers["x-spine-position"] == str(body["position"])
    assert (body["period"], body["limit"], body["hard"]) == ("total", 1000, True)
    assert body["limits"] == {"day": {"limit": 100, "hard": False}, "total": {"limit": 1000, "hard": True}}


def test_a_usage_past_a_hard_limit_is_402_and_records_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    set_limit(client, headers, "total", 10, hard=True)
    assert use(client, headers, 7).status_code == 201
    problem = assert_problem(use(client, headers, 4), 402, "budget.exceeded")
    assert {k: problem[k] for k in ("unit", "period", "limit", "used", "amount")} == {
        "unit": "tokens", "period": "total", "limit": 10, "used": 7, "amount": 4,
    }  # fmt: skip
    last = use(client, headers, 3)  # reaching the limit exactly is allowed
    assert last.status_code == 201
    assert_problem(use(client, headers, 0.5), 402, "budget.exceeded")
    tokens = budget(client, headers, last)["tokens"]
    assert tokens["totals"]["total"]["amount"] == 10
    assert tokens["limits"]["total"] == {
        "limit": 10, "hard": True, "used": 10, "remaining": 0, "set_at": "2026-11-28T12:00:00Z", "set_by": "u1",
    }  # fmt: skip
    assert len(ledger(client, headers, last)["entries"]) == 2


def test_a_soft_limit_accepts_and_warns(client: TestClient, headers: dict[str, str]) -> None:
    set_limit(client, headers, "day", 5, hard=False)
    assert use(client, headers, 5).json()["warnings"] == []
    passed = use(client, headers, 2)
    assert passed.status_code == 201
    assert passed.json()["warnings"] == [{"period": "day", "limit": 5, "used": 7}]
    [entry] = ledger(client, headers, passed, after=passed.json()["position"] - 1)["entries"]
    assert entry["warnings"] == [{"period": "day", "limit": 5, "used": 7}]


def test_limits_of_other_units_do_not_apply(client: TestClient, headers: dict[str, str]) -> None:
    set_limit(client, headers, "total", 0, hard=True, unit="usd")
    assert_problem(use(client, headers, 1, unit="usd"), 402, "budget.exceeded")
    assert use(client, headers, 1, unit="tokens").status_code == 201


def test_totals_are_per_current_day_month_and_all_time(
    client: TestClient, headers: dict[str, str], clock: Clock
) -> None:
    set_limit(client, headers, "day", 10, hard=True)
    use(client, headers, 8, cost_usd=0.5)
    assert_problem(use(client, headers, 3), 402, "budget.exceeded")
    first = budget(client, headers, use(client, headers, 2))["tokens"]
    assert first["totals"]["day"] == {"key": "2026-11-28", "amount": 10, "cost_usd": 0.5, "count": 2}
    assert first["limits"]["day"]["remaining"] == 0

    clock.now += timedelta(days=1)  # a new day: nothing used yet today, the view says so unprompted
    seen = client.get("/v1/budget", headers=headers).json()
    assert seen["day"] == "2026-11-29"
    tokens = seen["units"][0]
    assert tokens["totals"]["day"] == {"key": "2026-11-29", "amount": 0, "cost_usd": 0, "count": 0}
    assert (tokens["totals"]["month"]["amount"], tokens["totals"]["total"]["amount"]) == (10, 10)
    assert tokens["limits"]["day"]["remaining"] == 10
    today = use(client, headers, 3)  # the day limit is free again
    assert today.status_code == 201
    assert today.json()["totals"]["day"]["amount"] == 3

    clock.now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    december = budget(client, headers, use(client, headers, 1))
    assert december["tokens"]["totals"]["month"] == {"key": "2026-12", "amount": 1, "cost_usd": 0, "count": 1}
    assert december["tokens"]["totals"]["total"]["amount"] == 14


def test_budget_lists_every_unit_or_one(client: TestClient, headers: dict[str, str]) -> None:
    set_limit(client, headers, "month", 50, hard=False, unit="usd")
    use(client, headers, 1, unit="tok")
    last = use(client, headers, 2, unit="tokens")
    units = budget(client, headers, last)
    assert sorted(units) == ["tok", "tokens", "usd"]
    assert units["usd"]["totals"]["total"]["amount"] == 0  # a limit and no usage yet
    assert list(budget(client, headers, last, unit="tok")) == ["tok"]  # not tokens: exact unit


def test_the_ledger_pages_by_cursor_and_filters_by_run_and_unit(
    client: TestClient, headers: dict[str, str]
) -> None:
    written = [
        use(client, headers, n, unit="usd" if n % 3 == 0 else "tokens", run_id=f"run-{n % 2}")
        for n in range(1, 8)
    ]
    last = written[-1]
    positions = [answer.json()["position"] for answer in written]
    first = ledger(client, headers, last, limit=3)
    assert [e["position"] for e in first["entries"]] == positions[:3]
    assert first["next"] == positions[2]
    rest = ledger(client, headers, last, after=first["next"], limit=10)
    assert [e["amount"] for e in rest["entries"]] == [4, 5, 6, 7]
    end = ledger(client, headers, last, after=rest["next"])
    assert (end["entries"], end["next"]) == ([], rest["next"])

    run_1 = ledger(client, headers, last, run_id="run-1")["entries"]
    assert [e["amount"] for e in run_1] == [1, 3, 5, 7]
    assert [e["amount"] for e in ledger(client, headers, last, unit="usd")["entries"]] == [3, 6]
    both = ledger(client, headers, last, run_id="run-1", unit="tokens", limit=2)
    assert [e["amount"] for e in both["entries"]] == [1, 5]
    more = ledger(client, headers, last, run_id="run-1", unit="tokens", limit=2, after=both["next"])
    assert [e["amount"] for e in more["entries"]] == [7]
    entry = run_1[0]
    assert (entry["unit"], entry["user_id"], entry["at"]) == ("tokens", "u1", "2026-11-28T12:00:00Z")


def test_a_retried_usage_id_answers_the_original_and_records_nothing_twice(
    client: TestClient, headers: dict[str, str]
) -> None:
    set_limit(client, headers, "total", 10, hard=True)
    first = use(client, headers, 4, id="call-1")
    use(client, headers, 1)  # other usage lands between: the retry's version is stale
    again = use(client, headers, 4, id="call-1")
    assert again.status_code == 201
    assert (again.json()["position"], again.json()["replayed"]) == (first.json()["position"], True)
    assert again.json()["totals"] == first.json()["totals"]  # the original answer, not a new decision
    full = use(client, headers, 5)  # the budget is now spent: 10 of 10
    assert full.status_code == 201
    late = use(client, headers, 4, id="call-1")  # a retry is answered, never refused
    assert (late.status_code, late.json()["position"]) == (201, first.json()["position"])
    assert_problem(use(client, headers, 4, id="call-2"), 402, "budget.exceeded")
    assert budget(client, headers, full)["tokens"]["totals"]["total"] == {
        "key": "total", "amount": 10, "cost_usd": 0, "count": 3,
    }  # fmt: skip
    assert [e["id"] for e in ledger(client, headers, full)["entries"]] == ["call-1", None, None]


def test_an_id_retried_in_another_project_is_another_usage(
    client: TestClient, headers: dict[str, str]
) -> None:
    mine = use(client, headers, 1, id="call-1")
    other = provision_sync(client, project="p2")
    theirs = use(client, other, 1, id="call-1")
    assert theirs.json()["replayed"] is False
    assert budget(client, other, theirs)["tokens"]["totals"]["total"]["amount"] == 1
    assert budget(client, headers, mine)["tokens"]["totals"]["total"]["amount"] == 1


def test_budgets_belong_to_their_project_and_tenant(client: TestClient, headers: dict[str, str]) -> None:
    set_limit(client, headers, "total", 1, hard=True)
    spent = use(client, headers, 1)
    assert_problem(use(client, headers, 1), 402, "budget.exceeded")
    for other in (provision_sync(client, project="p2"), provision_sync(client, tenant="t2")):
        assert client.get("/v1/budget", headers=other).json()["units"] == []
        assert client.get("/v1/budget/ledger", headers=other).json() == {"entries": [], "next": 0}
        assert use(client, other, 5).status_code == 201
    assert budget(client, headers, spent)["tokens"]["totals"]["total"]["amount"] == 1


def test_every_member_of_the_project_shares_its_budget(client: TestClient, headers: dict[str, str]) -> None:
    set_limit(client, headers, "total", 2, hard=True)
    use(client, headers, 2)
    agent = provision_sync(client, user="agent-7", role="agent")
    assert_problem(use(client, agent, 1), 402, "budget.exceeded")


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 0, "unit": "tokens"},
        {"amount": -1, "unit": "tokens"},
        {"unit": "tokens"},
        {"amount": 1},
        {"amount": 1, "unit": "bad unit"},
        {"amount": 1, "unit": "a|b"},
        {"amount": 1, "unit": "tokens", "cost_usd": -1},
        {"amount": 1, "unit": "tokens", "run_id": "no spaces"},
        {"amount": 1, "unit": "tokens", "id": ""},
        {"amount": 1, "unit": "tokens", "model": ""},
        {"amount": 1e300, "unit": "tokens"},
    ],
)
def test_invalid_usages_are_422(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    assert_problem(client.post("/v1/budget/usage", json=body, headers=headers), 422, "request.invalid")


@pytest.mark.parametrize(
    "body",
    [
        {"period": "week", "unit": "tokens", "limit": 1, "hard": True},
        {"period": "day", "unit": "tokens", "limit": -1, "hard": True},
        {"period": "day", "unit": "tokens", "limit": 1},
        {"period": "day", "unit": "tokens", "limit": 1, "hard": "yes"},
        {"period": "day", "limit": 1, "hard": True},
    ],
)
def test_invalid_limits_are_422(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    assert_problem(client.put("/v1/budget/limits", json=body, headers=headers), 422, "request.invalid")


def test_bad_reads_are_refused(client: TestClient, headers: dict[str, str]) -> None:
    assert_problem(client.get("/v1/budget/ledger?after=x", headers=headers), 400, "cursor.invalid")
    assert_problem(client.get("/v1/budget/ledger?limit=0", headers=headers), 422, "request.invalid")
    assert_problem(client.get("/v1/budget/ledger?unit=a|b", headers=headers), 422, "request.invalid")
    assert_problem(client.get("/v1/budget?unit=a%20b", headers=headers), 422, "request.invalid")
    far = {**headers, "X-Spine-Min-Position": "99"}
    assert_problem(client.get("/v1/budget", headers=far), 400, "cursor.invalid")


def test_a_budget_view_that_cannot_be_served_refuses_before_anything_is_appended(
    client: TestClient, headers: dict[str, str]
) -> None:
    route = {"resource_kind": "budget_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
             "backend_type": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}  # fmt: skip
    assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    assert_problem(use(client, headers, 1), 503, "budget_store.backend_unavailable")
    assert_problem(set_limit(client, headers, "day", 1, hard=True), 503, "budget_store.backend_unavailable")
    assert client.get("/v1/events", headers=headers).json()["head"] == 0


def test_budget_events_are_in_the_log_one_stream_per_unit(
    client: TestClient, headers: dict[str, str]
) -> None:
    set_limit(client, headers, "day", 5, hard=True)
    use(client, headers, 1)
    stream = client.get("/v1/streams/budget:tokens", headers=headers).json()
    assert [e["type"] for e in stream["events"]] == ["budget.limit_set", "budget.usage_recorded"]
    assert stream["events"][-1]["data"]["state"]["total"]["amount"] == 1


async def test_of_thirty_concurrent_usages_against_a_limit_of_ten_exactly_ten_pass(
    http: httpx.AsyncClient,
) -> None:
    limit = await http.put(
        "/v1/budget/limits", json={"period": "total", "unit": "calls", "limit": 10, "hard": True}
    )
    assert limit.status_code == 200
    answers: list[httpx.Response] = []

    async def spender(n: int) -> None:
        answers.append(
            await http.post("/v1/budget/usage", json={"amount": 1, "unit": "calls", "run_id": f"r{n}"})
        )

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(spender, n)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] * 10 + [402] * 20
    assert {a.json()["error_code"] for a in answers if a.status_code == 402} == {"budget.exceeded"}
    accepted = [a.json() for a in answers if a.status_code == 201]
    assert sorted(a["totals"]["total"]["amount"] for a in accepted) == list(range(1, 11))
    last = max(a["position"] for a in accepted)
    wait = {"X-Spine-Min-Position": str(last)}
    [calls] = (await http.get("/v1/budget", headers=wait)).json()["units"]
    assert calls["totals"]["total"]["amount"] == 10
    assert len((await http.get("/v1/budget/ledger", headers=wait)).json()["entries"]) == 10


async def test_concurrent_usages_of_one_unit_all_land_and_none_is_lost(http: httpx.AsyncClient) -> None:
    async def spender(n: int) -> None:
        answer = await http.post("/v1/budget/usage", json={"amount": 1, "unit": "tokens", "id": f"call-{n}"})
        assert answer.status_code == 201, answer.text

    async with anyio.create_task_group() as tg:
        for n in range(30):
            tg.start_soon(spender, n)
    head = (await http.get("/v1/events", params={"limit": 1})).json()["head"]
    [tokens] = (await http.get("/v1/budget", headers={"X-Spine-Min-Position": str(head)})).json()["units"]
    assert tokens["totals"]["total"] == {"key": "total", "amount": 30, "cost_usd": 0, "count": 30}

"""Property tests of the five views, through the HTTP API only.

Each test drives a random sequence of commands into a fresh service, then checks two things:
the view as read back (waiting for the last write with `X-Spine-Min-Position`) equals a small
model of the view's rules written here, independently of the service; and after a rebuild from
position 0 (`POST /v1/projections/{name}/rebuild?wait=true`) every read answers exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.conftest import Clock
from tests.http.test_events_api import assert_problem
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

# A fresh service per example (~0.1 s): no state leaks from one example into the next.
PROPERTY = settings(max_examples=25, deadline=None)
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # three days before a month ends


@dataclass
class Api:
    """One fresh service: its client, its clock, each member's headers, and per project the
    position of the last accepted write (what a read-your-writes read waits for)."""

    client: TestClient[Any]
    clock: Clock
    members: dict[str, dict[str, str]]
    last: dict[str, int] = field(default_factory=dict)

    def headers(self, user: str, project: str = "p1", **extra: str) -> dict[str, str]:
        return {**self.members[user], "X-Project-Id": project, **extra}

    def wrote(self, answer: Any, status: int = 200, project: str = "p1") -> Any:
        assert answer.status_code == status, answer.text
        position = int(answer.headers["x-spine-position"])
        self.last[project] = max(self.last.get(project, 0), position)
        return answer

    def read(self, user: str, path: str, project: str = "p1", **params: Any) -> Any:
        wait = {"X-Spine-Min-Position": str(self.last[project])} if project in self.last else {}
        return self.client.get(path, params=params, headers=self.headers(user, project, **wait))


@contextmanager
def service(
    tmp: pytest.TempPathFactory, members: dict[str, str], projects: tuple[str, ...] = ("p1",)
) -> Iterator[Api]:
    clock = Clock(START)
    # NORMAL: no fsync per commit; what is committed, and so every answer, is the same as with FULL
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config, clock=clock)) as client:
        for project in projects[1:]:
            provision_sync(client, project=project)
        headers = {user: provision_sync(client, user=user, role=role) for user, role in members.items()}
        yield Api(client, clock, headers)


def rebuild(api: Api, name: str) -> list[tuple[str, int, str]]:
    """Rebuild every partition's view `name` from position 0; (project, generation, state) of each."""
    answer = api.client.post(
        f"/v1/projections/{name}/rebuild?wait=true", headers=admin_headers_sync(api.client)
    )
    assert answer.status_code == 202, answer.text
    return [(p["project_id"], p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]]


def ok(answer: Any) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=6)
json_values = st.recursive(
    scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


# Memory: a dict per user; a value with a TTL reads as absent from its expiry on


MEMORY_KEYS = ("goal", "a:b")  # few keys, so that users and commands often meet on one


@dataclass(frozen=True)
class Remember:
    user: str
    key: str
    value: Any
    ttl: int | None


@dataclass(frozen=True)
class Forget:
    user: str
    key: str


@dataclass(frozen=True)
class Wait:
    seconds: int | None  # None: exactly until the next expiry, where a value stops being found


@dataclass(frozen=True)
class Look:
    """Compare the whole view with the model now, not only at the end."""


two_users, memory_keys = st.sampled_from(("u1", "u2")), st.sampled_from(MEMORY_KEYS)
memory_commands = st.one_of(
    st.builds(Remember, two_users, memory_keys, json_values, st.none() | st.sampled_from((1, 30, 60))),
    st.builds(Forget, two_users, memory_keys),
    st.builds(Wait, st.none() | st.sampled_from((1, 29, 30, 31, 60, 3600))),
    st.just(Look()),
)


def memory_model(values: dict[tuple[str, str], tuple[Any, datetime | None]], now: datetime) -> dict[str, Any]:
    """Each user's keys as GET /v1/memory/{key} answers them: found until the expiry, if any."""
    expected = {}
    for user in ("u1", "u2"):
        for key in MEMORY_KEYS:
            value, expires_at = values.get((user, key), (None, now))  # an absent key: as if expiring now
            live = expires_at is None or now < expires_at
            expected[f"{user}/{key}"] = {
                "key": key,
                "value": value if live else None,
                "found": live,
                "expires_at": stamp(expires_at) if live and expires_at is not None else None,
            }
    return expected


def memory_view(api: Api) -> dict[str, Any]:
    return {f"{u}/{k}": ok(api.read(u, f"/v1/memory/{k}")) for u in ("u1", "u2") for k in MEMORY_KEYS}


@PROPERTY
@given(commands=st.lists(memory_commands, min_size=5, max_size=25))
def test_memory_is_each_users_dict_with_expiry_and_rebuilds_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Any]
) -> None:
    values: dict[tuple[str, str], tuple[Any, datetime | None]] = {}
    with service(tmp_path_factory, {"u1": "member", "u2": "member"}) as api:
        for command in commands:
            match command:
                case Remember(user, key, value, ttl):
                    body = {"value": value} if ttl is None else {"value": value, "ttl_seconds": ttl}
                    api.wrote(api.client.put(f"/v1/memory/{key}", json=body, headers=api.headers(user)))
                    values[user, key] = (
                        value,
                        None if ttl is None else api.clock.now + timedelta(seconds=ttl),
                    )
                case Forget(user, key):
                    answer = api.wrote(api.client.delete(f"/v1/memory/{key}", headers=api.headers(user)))
                    assert answer.json()["status"] == "deleted"
                    values.pop((user, key), None)
                case Wait(seconds):
                    now = api.clock.now
                    expiries = [at for _, at in values.values() if at is not None and at > now]
                    api.clock.now = (
                        now + timedelta(seconds=seconds) if seconds else min(expiries, default=now)
                    )
                case Look():
                    assert memory_view(api) == memory_model(values, api.clock.now)
        served = memory_view(api)
        assert served == memory_model(values, api.clock.now)
        assert rebuild(api, "memory") == [("p1", 1, "swapped")]
        assert memory_view(api) == served


# Sessions: one ordered list per (user, session id); a message's index is its place in the list


SESSIONS = ("s1", "s10", "chat")  # s1 is a prefix of s10


@dataclass(frozen=True)
class Say:
    user: str
    session: str
    role: str
    content: Any
    metadata: dict[str, Any]


session_commands = st.builds(
    Say,
    two_users,
    st.sampled_from(SESSIONS),
    st.sampled_from(("user", "assistant", "tool", "system")),
    json_values,
    st.dictionaries(st.sampled_from(("lang", "tool")), st.integers(0, 9) | st.text(max_size=3), max_size=2),
)
MESSAGE_FIELDS = ("index", "role", "content", "metadata", "position")


def sessions_view(api: Api) -> dict[str, Any]:
    return {f"{u}/{s}": ok(api.read(u, f"/v1/sessions/{s}")) for u in ("u1", "u2") for s in SESSIONS}


@PROPERTY
@given(commands=st.lists(session_commands, min_size=5, max_size=25))
def test_sessions_are_each_users_ordered_lists_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Say]
) -> None:
    lists: dict[str, list[dict[str, Any]]] = {f"{u}/{s}": [] for u in ("u1", "u2") for s in SESSIONS}
    with service(tmp_path_factory, {"u1": "member", "u2": "member"}) as api:
        for say in commands:
            body = {"role": say.role, "content": say.content, "metadata": say.metadata}
            path = f"/v1/sessions/{say.session}/messages"
            answer = api.wrote(api.client.post(path, json=body, headers=api.headers(say.user)), 201).json()
            messages = lists[f"{say.user}/{say.session}"]
            assert (answer["session_id"], answer["index"]) == (say.session, len(messages))
            messages.append({**body, "index": len(messages), "position": answer["position"]})
        served = sessions_view(api)
        for name, session in served.items():
            assert session["session_id"] == name.split("/")[1]
            assert [{k: m[k] for k in MESSAGE_FIELDS} for m in session["messages"]] == lists[name]
            times = [m["recorded_at"] for m in session["messages"]]
            assert times == sorted(times)
        assert rebuild(api, "sessions") == [("p1", 1, "swapped")]
        assert sessions_view(api) == served


# Blackboard: {key: (value, version)} per run, shared by every member; a stale expected version is 409


RUNS = ("run-1", "run-10")  # run-1 is a prefix of run-10
BOARD_KEYS = ("plan", "lock", "a:b")
BOARD_USERS = {"u1": "member", "u2": "member", "agent-7": "agent"}


@dataclass(frozen=True)
class Post:
    user: str
    run: str
    key: str
    value: Any
    expected: int | str | None  # an entry version, "no_stream", "any", or none at all
    if_match: bool  # an int expected version sent as If-Match rather than in the body


blackboard_commands = st.builds(
    Post,
    st.sampled_from(tuple(BOARD_USERS)),
    st.sampled_from(RUNS),
    st.sampled_from(BOARD_KEYS),
    json_values,
    st.none() | st.integers(0, 3) | st.sampled_from(("no_stream", "any")),
    st.booleans(),
)


def blackboard_view(api: Api) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for run in RUNS:
        seen[run] = ok(api.read("u1", f"/v1/runs/{run}/blackboard"))
        for key in BOARD_KEYS:
            answer = api.read("u2", f"/v1/runs/{run}/blackboard/{key}")
            if answer.status_code == 404:
                seen[f"{run}/{key}"] = assert_problem(answer, 404, "blackboard.not_found")["error_code"]
            else:
                seen[f"{run}/{key}"] = (answer.headers["etag"], ok(answer))
    return seen


def blackboard_model(board: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for run in RUNS:
        entries = [board[run, key] for key in sorted(BOARD_KEYS) if (run, key) in board]
        expected[run] = {"run_id": run, "entries": entries}
        for key in BOARD_KEYS:
            entry = board.get((run, key))
            expected[f"{run}/{key}"] = (
                "blackboard.not_found" if entry is None else (f'"{entry["version"]}"', entry)
            )
    return expected


def without_times(seen: dict[str, Any]) -> dict[str, Any]:
    """The view with each entry's `updated_at` (the spine's wall clock) checked and left out."""

    def strip(entry: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(entry.pop("updated_at"), str)
        return entry

    stripped: dict[str, Any] = {}
    for name, value in seen.items():
        if name in RUNS:
            stripped[name] = {**value, "entries": [strip(dict(e)) for e in value["entries"]]}
        elif isinstance(value, tuple):
            stripped[name] = (value[0], strip(dict(value[1])))
        else:
            stripped[name] = value
    return stripped


@PROPERTY
@given(commands=st.lists(blackboard_commands, min_size=5, max_size=25))
def test_blackboards_are_versioned_maps_per_run_with_compare_and_set_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Post]
) -> None:
    board: dict[tuple[str, str], dict[str, Any]] = {}
    with service(tmp_path_factory, BOARD_USERS) as api:
        for post in commands:
            body: dict[str, Any] = {"value": post.value}
            headers = api.headers(post.user)
            if isinstance(post.expected, int) and post.if_match:
                headers["If-Match"] = f'"{post.expected}"'
            elif post.expected is not None:
                body["expected_version"] = post.expected
            answer = api.client.put(f"/v1/runs/{post.run}/blackboard/{post.key}", json=body, headers=headers)
            current = board.get((post.run, post.key), {"version": 0})["version"]
            wanted = 0 if post.expected == "no_stream" else post.expected
            if wanted not in (None, "any", current):
                problem = assert_problem(answer, 409, "blackboard.version_conflict")
                assert problem["current_version"] == current
                continue
            api.wrote(answer)
            position = int(answer.headers["x-spine-position"])
            assert answer.json() == {"key": post.key, "version": current + 1, "position": position}
            assert answer.headers["etag"] == f'"{current + 1}"'
            board[post.run, post.key] = {"key": post.key, "value": post.value, "version": current + 1,
                                         "written_by": post.user, "position": position}  # fmt: skip
        served = blackboard_view(api)
        assert without_times(served) == blackboard_model(board)
        assert rebuild(api, "blackboard") == [("p1", 1, "swapped")]
        assert blackboard_view(api) == served


# Budget: totals per unit of each UTC day, month and all time; hard limits refuse, soft ones warn


UNITS = ("tokens", "tok")  # tok is a prefix of tokens
PERIODS = ("day", "month", "total")
BUDGET_USERS = {"u1": "member", "agent-7": "agent"}


@dataclass(frozen=True)
class Spend:
    user: str
    unit: str
    amount: Decimal | None  # None: exactly what is left under the unit's tightest limit
    cost: Decimal
    run_id: str | None
    usage_id: str | None


@dataclass(frozen=True)
class Cap:
    user: str
    unit: str
    period: str
    limit: Decimal
    hard: bool


@dataclass(frozen=True)
class Later:
    hours: int


@dataclass(frozen=True)
class Retry:
    """Send again, as it was, one of the usages with an id recorded so far (when there is one)."""

    pick: int


# Few amounts and limits, so that sums often land exactly on a limit; 0.1 + 0.2 must reach 0.3
amounts = st.none() | st.sampled_from(("0.1", "0.2", "0.3", "0.5", "1", "2.5")).map(Decimal)
limits = st.sampled_from(("0", "0.3", "0.5", "1", "2", "3", "5")).map(Decimal)
spends = st.builds(
    Spend,
    st.sampled_from(tuple(BUDGET_USERS)),
    st.sampled_from(UNITS),
    amounts,
    st.sampled_from((Decimal(0), Decimal("0.01"), Decimal("0.25"))),
    st.sampled_from((None, "run-1", "run-2")),
    st.sampled_from((None, None, "call-1", "call-2")),
)
caps = st.builds(
    Cap,
    st.sampled_from(tuple(BUDGET_USERS)),
    st.sampled_from(UNITS),
    st.sampled_from(PERIODS),
    limits,
    st.booleans(),
)
later = st.builds(Later, st.sampled_from((1, 11, 24, 72)))
retries = st.builds(Retry, st.integers(0, 9))
budget_commands = st.one_of(spends, spends, spends, caps, caps, later, retries, retries)  # each alike likely


@dataclass
class Tally:
    amount: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    count: int = 0


@dataclass
class BudgetModel:
    """Tallies of every (unit, period, period key) ever used, limits, the ledger, answered ids."""

    tallies: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    limits: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    units: set[str] = field(default_factory=set)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    answered: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sent: list[Spend] = field(default_factory=list)  # the usages with an id, as recorded

    @staticmethod
    def keys(now: datetime) -> dict[str, str]:
        return {"day": now.strftime("%Y-%m-%d"), "month": now.strftime("%Y-%m"), "total": "total"}

    def tally(self, unit: str, period: str, now: datetime) -> Tally:
        return self.tallies.get((unit, period, self.keys(now)[period]), Tally())

    def totals(self, unit: str, now: datetime) -> dict[str, Any]:
        return {
            p: {
                "key": self.keys(now)[p],
                "amount": float(t.amount),
                "cost_usd": float(t.cost),
                "count": t.count,
            }
            for p in PERIODS
            for t in [self.tally(unit, p, now)]
        }

    def rules(self, unit: str) -> dict[str, Any]:
        return {
            p: {"limit": rule["limit"], "hard": rule["hard"]} for p, rule in self.limits.get(unit, {}).items()
        }

    def room(self, unit: str, now: datetime) -> Decimal:
        """What is left under the unit's tightest limit (1 when none is left, or no limit set)."""
        left = [r["exact"] - self.tally(unit, p, now).amount for p, r in self.limits.get(unit, {}).items()]
        return min((room for room in left if room > 0), default=Decimal(1))

    def decide(
        self, unit: str, amount: Decimal, now: datetime
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(the 402's details, or None) and the soft limits the usage passes."""
        warnings = []
        for period in PERIODS:
            rule = self.limits.get(unit, {}).get(period)
            used = self.tally(unit, period, now).amount
            if rule is None or used + amount <= rule["exact"]:
                continue
            if rule["hard"]:
                refusal = {"unit": unit, "period": period, "limit": rule["limit"], "used": float(used),
                           "amount": float(amount)}  # fmt: skip
                return refusal, []
            warnings.append({"period": period, "limit": rule["limit"], "used": float(used + amount)})
        return None, warnings

    def record(self, unit: str, amount: Decimal, cost: Decimal, now: datetime) -> None:
        self.units.add(unit)
        for period in PERIODS:
            tally = self.tallies.setdefault((unit, period, self.keys(now)[period]), Tally())
            tally.amount += amount
            tally.cost += cost
            tally.count += 1

    def overview(self, now: datetime, only: str | None = None) -> dict[str, Any]:
        units = []
        for unit in sorted(u for u in self.units if only in (None, u)):
            totals = self.totals(unit, now)
            limits = {}
            for period, rule in self.limits.get(unit, {}).items():
                used = self.tally(unit, period, now).amount
                limits[period] = {"limit": rule["limit"], "hard": rule["hard"], "used": float(used),
                                  "remaining": float(max(Decimal(0), rule["exact"] - used)),
                                  "set_at": rule["set_at"], "set_by": rule["set_by"]}  # fmt: skip
            units.append({"unit": unit, "limits": limits, "totals": totals})
        keys = self.keys(now)
        return {"day": keys["day"], "month": keys["month"], "units": units}

    def entries(self, **only: str) -> dict[str, Any]:
        found = [e for e in self.ledger if all(e[k] == v for k, v in only.items())]
        return {"entries": found, "next": found[-1]["position"] if found else 0}


def budget_view(api: Api) -> dict[str, Any]:
    seen = {
        "all": ok(api.read("u1", "/v1/budget")),
        "ledger": ok(api.read("agent-7", "/v1/budget/ledger", limit=1000)),
    }
    for unit in UNITS:
        seen[unit] = ok(api.read("u1", "/v1/budget", unit=unit))
        seen[f"ledger/{unit}"] = ok(api.read("u1", "/v1/budget/ledger", unit=unit, limit=1000))
    for run in ("run-1", "run-2"):
        seen[f"ledger/{run}"] = ok(api.read("u1", "/v1/budget/ledger", run_id=run, limit=1000))
    return seen


def budget_model(model: BudgetModel, now: datetime) -> dict[str, Any]:
    expected = {"all": model.overview(now), "ledger": model.entries()}
    for unit in UNITS:
        expected[unit] = model.overview(now, only=unit)
        expected[f"ledger/{unit}"] = model.entries(unit=unit)
    for run in ("run-1", "run-2"):
        expected[f"ledger/{run}"] = model.entries(run_id=run)
    return expected


def spend(api: Api, model: BudgetModel, command: Spend) -> None:
    now = api.clock.now
    amount = command.amount or model.room(command.unit, now)
    body = {"amount": float(amount), "unit": command.unit, "cost_usd": float(command.cost),
            "run_id": command.run_id, "id": command.usage_id}  # fmt: skip
    answer = api.client.post("/v1/budget/usage", json=body, headers=api.headers(command.user))
    retried = model.answered.get((command.unit, command.usage_id or ""))
    if retried is not None:  # a retry answers the original usage and records nothing
        assert (answer.status_code, answer.json()) == (201, {**retried, "replayed": True})
        return
    refusal, warnings = model.decide(command.unit, amount, now)
    if refusal is not None:
        problem = assert_problem(answer, 402, "budget.exceeded")
        assert {k: problem[k] for k in refusal} == refusal
        return
    api.wrote(answer, 201)
    model.record(command.unit, amount, command.cost, now)
    position = int(answer.headers["x-spine-position"])
    entry = {"position": position, "unit": command.unit, "amount": float(amount),
             "cost_usd": float(command.cost), "model": None, "run_id": command.run_id, "id": command.usage_id,
             "at": stamp(now), "user_id": command.user, "warnings": warnings}  # fmt: skip
    model.ledger.append(entry)
    expected = {**{k: entry[k] for k in ("position", "unit", "amount", "cost_usd", "model", "run_id", "id")},
                "warnings": warnings, "totals": model.totals(command.unit, now),
                "limits": model.rules(command.unit), "replayed": False}  # fmt: skip
    assert answer.json() == expected
    if command.usage_id is not None:
        model.answered[command.unit, command.usage_id] = expected
        model.sent.append(replace(command, amount=amount))


def cap(api: Api, model: BudgetModel, command: Cap) -> None:
    now = api.clock.now
    body = {
        "period": command.period,
        "unit": command.unit,
        "limit": float(command.limit),
        "hard": command.hard,
    }
    answer = api.wrote(api.client.put("/v1/budget/limits", json=body, headers=api.headers(command.user)))
    model.units.add(command.unit)
    model.limits.setdefault(command.unit, {})[command.period] = {
        "limit": float(command.limit), "exact": command.limit, "hard": command.hard,
        "set_at": stamp(now), "set_by": command.user,
    }  # fmt: skip
    assert answer.json() == {
        "position": int(answer.headers["x-spine-position"]), **body,
        "limits": model.rules(command.unit), "totals": model.totals(command.unit, now),
    }  # fmt: skip


@PROPERTY
@given(commands=st.lists(budget_commands, min_size=5, max_size=30))
def test_budgets_total_per_day_month_and_all_time_under_their_limits_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Any]
) -> None:
    model = BudgetModel()
    with service(tmp_path_factory, BUDGET_USERS) as api:
        for command in commands:
            match command:
                case Spend():
                    spend(api, model, command)
                case Cap():
                    cap(api, model, command)
                case Later(hours):
                    api.clock.now += timedelta(hours=hours)
                case Retry(pick) if model.sent:
                    spend(api, model, model.sent[pick % len(model.sent)])
        served = budget_view(api)
        assert served == budget_model(model, api.clock.now)
        assert rebuild(api, "budget") == [("p1", 1, "swapped")]
        assert budget_view(api) == served


# Audit: one record per accepted write and client record, and the security events of the project


PROJECTS = ("p1", "p2")
AUDIT_USERS = {"u1": "member", "u2": "member", "boss": "admin"}  # an admin reads every record
CLIENT_ACTIONS = ("report.exported", "report.viewed", "memory.set")  # a client may name a write's action
PRODUCT_ROUTES = {"memory", "session", "blackboard", "budget", "audit"}  # their streams and types


@dataclass(frozen=True)
class Note:
    """POST /v1/audit: a client record; an `id` already recorded in the project is a retry."""

    user: str
    project: str
    action: str
    resource: str
    details: dict[str, Any] | None
    record_id: str | None


@dataclass(frozen=True)
class Write:
    """Some other write, whose record is its event type and stream (or none when refused)."""

    user: str
    project: str
    kind: str
    name: str
    number: int


@dataclass(frozen=True)
class Trespass:
    """A request claiming another tenant: refused (403) and recorded as a security event."""

    user: str
    project: str


audit_users, projects = st.sampled_from(tuple(AUDIT_USERS)), st.sampled_from(PROJECTS)
details = st.dictionaries(st.sampled_from(("rows", "format")), st.integers(0, 9) | st.text(max_size=3))
notes = st.builds(
    Note,
    audit_users,
    projects,
    st.sampled_from(CLIENT_ACTIONS),
    st.sampled_from(("report:1", "memory:u1:k")),
    st.none() | details,
    st.none() | st.sampled_from(("export-1", "export-2")),
)
writes = st.builds(
    Write,
    audit_users,
    projects,
    st.sampled_from(("memory.set", "memory.deleted", "blackboard", "session", "events", "limit", "usage")),
    st.sampled_from(("k", "order.paid", "auth.violation", "memory.set")),  # a key, session, event type…
    st.integers(0, 3),
)
audit_commands = st.one_of(notes, writes, st.builds(Trespass, audit_users, projects))


@dataclass
class AuditModel:
    """Per project: its records in order, client record ids seen, entry versions, budget used."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {p: [] for p in PROJECTS})
    client_ids: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)

    def add(self, project: str, user: str, action: str, resource: str, source: str, request_id: str,
            details: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.records[project].append({"actor": user, "action": action, "resource": resource, "source": source,
                                      "request_id": request_id, "details": details})  # fmt: skip


def note(api: Api, model: AuditModel, command: Note, request_id: str) -> None:
    body: dict[str, Any] = {
        "action": command.action,
        "resource": command.resource,
        "details": command.details,
    }
    if command.record_id is not None:
        body["id"] = command.record_id
    headers = api.headers(command.user, command.project, **{"X-Request-Id": request_id})
    answer = api.wrote(api.client.post("/v1/audit", json=body, headers=headers), 201, command.project)
    original = model.client_ids.get((command.project, command.record_id or ""))
    if original is not None:  # a retry: the first record's answer, and no second record
        assert answer.json() == original
        return
    model.add(
        command.project, command.user, command.action, command.resource, "client", request_id, command.details
    )
    if command.record_id is not None:
        assert answer.json()["id"] == command.record_id
        model.client_ids[command.project, command.record_id] = answer.json()


def write(api: Api, model: AuditModel, command: Write, request_id: str) -> None:
    """Each kind of write, and what it records: action = event type, resource = stream."""
    user, project, name, number = command.user, command.project, command.name, command.number
    headers = api.headers(user, project, **{"X-Request-Id": request_id})
    records: list[tuple[str, str]] = []
    match command.kind:
        case "memory.set":
            answer = api.client.put(f"/v1/memory/{name}", json={"value": number}, headers=headers)
            records = [("memory.set", f"memory:{user}:{name}")]
        case "memory.deleted":
            answer = api.client.delete(f"/v1/memory/{name}", headers=headers)
            records = [("memory.deleted", f"memory:{user}:{name}")]
        case "session":
            message = {"role": "user", "content": number}
            answer = api.client.post(f"/v1/sessions/{name}/messages", json=message, headers=headers)
            records = [("session.message_added", f"session:{user}:{name}")]
        case "events":  # a product route's stream or type is refused (422) and records nothing
            stream = "budget:calls" if number == 3 else "orders"
            events = [{"type": name}, {"type": "order.shipped"}][: 1 + number % 2]
            answer = api.client.post("/v1/events", json={"stream": stream, "events": events}, headers=headers)
            if {stream.split(":")[0], *(e["type"].split(".")[0] for e in events)} & PRODUCT_ROUTES:
                assert_problem(answer, 422, "request.invalid")
                return
            records = [(event["type"], stream) for event in events]
        case "blackboard":  # a write expecting `number` - 1 (none when 0); a stale one records nothing
            current = model.versions.get((project, name), 0)
            body = {"value": number} if number == 0 else {"value": number, "expected_version": number - 1}
            answer = api.client.put(f"/v1/runs/run-1/blackboard/{name}", json=body, headers=headers)
            if number and number - 1 != current:
                assert_problem(answer, 409, "blackboard.version_conflict")
                return
            model.versions[project, name] = current + 1
            records = [("blackboard.written", f"blackboard:run-1:{name}")]
        case "limit":
            limit = {"period": "total", "unit": "calls", "limit": number, "hard": True}
            answer = api.client.put("/v1/budget/limits", json=limit, headers=headers)
            model.limits[project] = number
            records = [("budget.limit_set", "budget:calls")]
        case "usage":  # a usage past the hard limit is refused (402) and records nothing
            usage = {"amount": number + 1, "unit": "calls"}
            answer = api.client.post("/v1/budget/usage", json=usage, headers=headers)
            if model.spent.get(project, 0) + number + 1 > model.limits.get(project, 10**9):
                assert_problem(answer, 402, "budget.exceeded")
                return
            model.spent[project] = model.spent.get(project, 0) + number + 1
            records = [("budget.usage_recorded", "budget:calls")]
    api.wrote(answer, 201 if command.kind in ("session", "events", "usage") else 200, project)
    for action, resource in records:
        model.add(project, user, action, resource, "write", request_id)


def trespass(api: Api, model: AuditModel, command: Trespass, request_id: str) -> None:
    headers = api.headers(command.user, command.project, **{"X-Request-Id": request_id, "X-Tenant-Id": "t2"})
    assert_problem(api.client.get("/v1/events", headers=headers), 403, "auth.identity_override")
    model.add(command.project, command.user, "auth.violation", "/v1/events", "security", request_id)


SEEN = ("actor", "action", "resource", "source", "request_id")


def audit_queries(reader: str, actions: list[str]) -> dict[str, dict[str, str]]:
    """What a reader asks of a project's audit: everything, by action, by actor, by both. An admin
    names every actor and "u" (a prefix of one, which is no actor); a member names each member."""
    admin = AUDIT_USERS[reader] == "admin"
    queries: dict[str, dict[str, str]] = {"all": {}, **{f"action={a}": {"action": a} for a in actions}}
    for actor in (*AUDIT_USERS, "u") if admin else ("u1", "u2"):
        queries[f"actor={actor}"] = {"actor": actor}
        if admin:
            queries.update({f"actor={actor}&action={a}": {"actor": actor, "action": a} for a in actions})
    return queries


def audit_view(api: Api, actions: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for project in PROJECTS:
        for reader in AUDIT_USERS:
            for name, params in audit_queries(reader, actions).items():
                query = f"{project}/{reader}?{name}"
                answer = api.read(reader, "/v1/audit", project, limit=1000, **params)
                if answer.status_code == 403:
                    seen[query] = assert_problem(answer, 403, "auth.forbidden")["error_code"]
                else:
                    assert ok(answer)["next"] is None
                    seen[query] = answer.json()["records"]
        every = seen[f"{project}/boss?all"]
        pages, cursor = [], None  # paging two at a time reads the same records, each once
        while True:
            page = ok(
                api.read("boss", "/v1/audit", project, limit=2, **({"after": cursor} if cursor else {}))
            )
            pages.append(page["records"])
            if (cursor := page["next"]) is None:
                break
        assert [r for p in pages for r in p] == every
        assert all(len(p) == 2 for p in pages[:-1])
        for record in every:  # one record by its id: an admin reads any, a member their own
            for reader in AUDIT_USERS:
                answer = api.read(reader, f"/v1/audit/{record['id']}", project)
                if AUDIT_USERS[reader] == "admin" or record["actor"] == reader:
                    assert ok(answer) == record
                else:
                    assert_problem(answer, 404, "audit.not_found")
    for project, other in (PROJECTS, PROJECTS[::-1]):  # and never through another project
        theirs = {r["id"] for r in seen[f"{other}/boss?all"]}
        for record in seen[f"{project}/boss?all"]:
            if record["id"] not in theirs:  # a client may give records in both projects one id
                assert_problem(api.read("boss", f"/v1/audit/{record['id']}", other), 404, "audit.not_found")
    return seen


def audit_model(model: AuditModel, actions: list[str]) -> dict[str, Any]:
    expected: dict[str, Any] = {}
    for project in PROJECTS:
        for reader, role in AUDIT_USERS.items():
            for name, params in audit_queries(reader, actions).items():
                actor, action = params.get("actor"), params.get("action")
                if role != "admin" and actor not in (None, reader):
                    expected[f"{project}/{reader}?{name}"] = "auth.forbidden"
                    continue
                actor = actor if role == "admin" else reader
                expected[f"{project}/{reader}?{name}"] = [
                    r
                    for r in model.records[project]
                    if actor in (None, r["actor"]) and action in (None, r["action"])
                ]
    return expected


def seen_as_model(view: dict[str, Any]) -> dict[str, Any]:
    """Each record as the model knows it: security records' details are Spine's, not modelled."""
    return {
        name: records if isinstance(records, str) else [
            {**{k: r[k] for k in SEEN}, "details": None if r["source"] == "security" else r["details"]}
            for r in records
        ]
        for name, records in view.items()
    }  # fmt: skip


@PROPERTY
@given(commands=st.lists(audit_commands, min_size=5, max_size=25))
def test_audit_records_every_accepted_write_client_record_and_violation_in_order_and_rebuilds_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Any]
) -> None:
    model = AuditModel()
    with service(tmp_path_factory, AUDIT_USERS, PROJECTS) as api:
        for number, command in enumerate(commands):
            request_id = f"r-{number}"
            match command:
                case Note():
                    note(api, model, command, request_id)
                case Write():
                    write(api, model, command, request_id)
                case Trespass():
                    trespass(api, model, command, request_id)
        actions = sorted({r["action"] for p in PROJECTS for r in model.records[p]} | {"never.done", "report"})
        served = audit_view(api, actions)
        assert seen_as_model(served) == audit_model(model, actions)
        views = rebuild(api, "audit")
        assert sorted(views) == [("_audit", 1, "swapped"), ("p1", 1, "swapped"), ("p2", 1, "swapped")]
        assert audit_view(api, actions) == served

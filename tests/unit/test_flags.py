"""Feature flags in the domain: evaluation (rules, kill switch, rollout), value checks, decisions,
and the projection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from domain.errors import FlagNotFound, InvalidFlagValue
from domain.events import Event, EventMeta
from domain.flag_evaluation import Caller, StoredFlag, admitted, bucket, evaluate
from domain.flags import (
    CHANGED,
    CURRENT,
    DELETED,
    HISTORY,
    LIVE,
    FlagSpec,
    FlagsProjection,
    changed_event,
    check_values,
    decide_delete,
    history_key,
)
from domain.owned import owning_route
from domain.views import Delete, Upsert

ME = Caller(env="prod", surface_id="web", app_id="app1", user_id="u1")


def flag(**fields: Any) -> StoredFlag:
    return msgspec.convert({"type": "string", "default": "d", **fields}, StoredFlag)


def spec(**fields: Any) -> FlagSpec:
    return msgspec.convert({"type": "bool", "default": False, **fields}, FlagSpec)


# Evaluation


def test_a_flag_without_rules_answers_its_default() -> None:
    assert evaluate("f", flag(), ME) == evaluate("f", flag(rules=[]), ME)
    found = evaluate("f", flag(), ME)
    assert (found.value, found.reason, found.rule) == ("d", "default", None)


def test_the_kill_switch_answers_the_default_whatever_the_rules() -> None:
    found = evaluate("f", flag(enabled=False, rules=[{"value": "on"}]), ME)
    assert (found.value, found.reason, found.rule) == ("d", "off", None)
    assert evaluate("f", flag(enabled=True, rules=[{"value": "on"}]), ME).value == "on"


@pytest.mark.parametrize(
    ("condition", "matches"),
    [
        ({"envs": ["prod"]}, True),
        ({"envs": ["dev", "staging"]}, False),
        ({"surfaces": ["web", "ios"]}, True),
        ({"surfaces": ["ios"]}, False),
        ({"apps": ["app1"]}, True),
        ({"apps": ["app2"]}, False),
        ({"users": ["u0", "u1"]}, True),
        ({"users": ["u2"]}, False),
        ({"users": []}, False),  # an empty list matches no one; an absent one, anyone
        ({"envs": ["prod"], "surfaces": ["web"], "apps": ["app1"], "users": ["u1"]}, True),
        ({"envs": ["prod"], "surfaces": ["web"], "apps": ["app1"], "users": ["u2"]}, False),
    ],
)
def test_a_rule_matches_when_every_condition_it_has_does(condition: dict[str, Any], matches: bool) -> None:
    found = evaluate("f", flag(rules=[{**condition, "value": "r"}]), ME)
    assert (found.value, found.reason) == (("r", "rule") if matches else ("d", "default"))


def test_the_first_matching_rule_answers_with_its_index() -> None:
    rules = [{"users": ["u9"], "value": "a"}, {"apps": ["app1"], "value": "b"}, {"value": "c"}]
    found = evaluate("f", flag(rules=rules), ME)
    assert (found.value, found.reason, found.rule) == ("b", "rule", 1)
    elsewhere = evaluate("f", flag(rules=rules), Caller(env="prod", user_id="u2"))
    assert (elsewhere.value, elsewhere.rule) == ("c", 2)


def test_a_caller_missing_a_field_a_rule_lists_never_matches_it() -> None:
    anonymous = Caller(env="prod", surface_id="web")
    assert evaluate("f", flag(rules=[{"apps": ["app1"], "value": "r"}]), anonymous).reason == "default"
    assert evaluate("f", flag(rules=[{"users": ["u1"], "value": "r"}]), anonymous).reason == "default"


def test_a_rule_whose_rollout_refuses_the_user_falls_through_to_the_next() -> None:
    key = "f"
    out = next(f"user{n}" for n in range(1000) if bucket(key, f"user{n}") >= 5000)
    rules = [{"rollout": 50, "value": "half"}, {"value": "rest"}]
    assert evaluate(key, flag(rules=rules), Caller(user_id=out)).value == "rest"


def test_the_bucket_is_the_documented_hash() -> None:
    import hashlib

    digest = hashlib.sha256(b"new-checkout:u1").digest()
    assert bucket("new-checkout", "u1") == int.from_bytes(digest[:8], "big") % 10000


def test_a_rollout_is_stable_per_user_and_grows_monotonically() -> None:
    users = [f"user-{n}" for n in range(500)]
    at = {pct: {u for u in users if admitted("f", u, pct)} for pct in (0, 10, 25, 50.5, 100)}
    assert at[0] == set()
    assert at[100] == set(users)
    assert at[10] <= at[25] <= at[50.5] <= at[100]  # a user admitted at 10% stays admitted at 25%
    again = {u for u in users if admitted("f", u, 25)}
    assert again == at[25]
    # the key is part of the hash: another flag admits other users
    assert {u for u in users if admitted("g", u, 25)} != at[25]


def test_at_25_percent_about_a_quarter_of_10000_users_are_admitted() -> None:
    admitted_users = sum(admitted("checkout", f"user-{n}", 25) for n in range(10_000))
    assert 2300 <= admitted_users <= 2700


def test_a_rollout_with_two_decimals_admits_the_buckets_below_it() -> None:
    key = "f"
    users = {f"u{n}": bucket(key, f"u{n}") for n in range(20_000)}
    edge = next(u for u, b in users.items() if b == 1234)
    below = next(u for u, b in users.items() if b == 1233)
    assert admitted(key, below, 12.34)
    assert not admitted(key, edge, 12.34)
    assert admitted(key, edge, 12.35)


def test_a_caller_without_a_user_is_never_admitted_by_a_partial_rollout() -> None:
    nobody = Caller(env="prod", surface_id="web")
    assert not admitted("f", None, 99.99)
    assert admitted("f", None, 100)
    assert admitted("f", None, None)
    rules = [{"rollout": 99.99, "value": "partial"}, {"rollout": 100, "value": "all"}]
    assert evaluate("f", flag(rules=rules), nobody).value == "all"


# Writes: the spec, its values, its key


def test_every_value_must_be_of_the_flags_type_naming_the_field() -> None:
    check_values(spec(rules=[{"value": True}]))
    for wrong, field in (
        (spec(default=1), "default"),
        (spec(default=None), "default"),
        (spec(rules=[{"value": True}, {"value": "yes"}]), "rules[1].value"),
        (spec(type="string", default=3), "default"),
        (spec(type="number", default=True), "default"),
        (spec(type="string", default="x", rules=[{"value": ["x"]}]), "rules[0].value"),
    ):
        with pytest.raises(InvalidFlagValue) as raised:
            check_values(wrong)
        assert raised.value.field == field
    check_values(spec(type="number", default=1.5, rules=[{"value": 2}]))
    check_values(spec(type="json", default=None, rules=[{"value": {"a": [1, "b"]}}, {"value": "s"}]))


def test_values_larger_than_16_kib_are_refused() -> None:
    check_values(spec(type="string", default="x" * (16 * 1024 - 2)))
    with pytest.raises(InvalidFlagValue) as raised:
        check_values(spec(type="json", default="d", rules=[{"value": ["x" * 16 * 1024]}]))
    assert raised.value.field == "rules[0].value"


@pytest.mark.parametrize(
    "rule",
    [
        {"rollout": 12.345, "value": True},
        {"rollout": 100.01, "value": True},
        {"rollout": -1, "value": True},
        {"users": ["has space"], "value": True},
        {"users": ["u"] * 1001, "value": True},
        {"countries": ["fr"], "value": True},
        {"users": ["u1"]},
    ],
)
def test_rules_breaking_a_bound_are_refused(rule: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        spec(rules=[rule])


def test_more_than_100_rules_are_refused_and_envs_are_normalized() -> None:
    spec(rules=[{"value": True}] * 100)
    with pytest.raises(msgspec.ValidationError):
        spec(rules=[{"value": True}] * 101)
    assert spec(rules=[{"envs": ["production", "dev"], "value": True}]).rules[0].envs == ["prod", "dev"]


def test_flag_events_are_written_through_the_flag_routes_only() -> None:
    assert owning_route("flag:f", ["x"]) == "/v1/flags/{key}"
    assert owning_route("elsewhere", [CHANGED]) == "/v1/flags/{key}"


# Decisions and the projection


def event(event_type: str, version: int, data: dict[str, Any], position: int = 7) -> Event:
    return Event(
        id=f"e{position}",
        type=event_type,
        stream="flag:f",
        version=version,
        position=position,
        data=data,
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u1"),
        recorded_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def test_a_delete_needs_a_live_flag() -> None:
    with pytest.raises(FlagNotFound) as never:
        decide_delete("f", None, "why")
    assert (never.value.deleted, never.value.version) == (False, None)
    tombstone = event(DELETED, 3, {"key": "f", "reason": "old"})
    with pytest.raises(FlagNotFound) as gone:
        decide_delete("f", tombstone, "why")
    assert (gone.value.deleted, gone.value.version) == (True, 3)
    live = event(CHANGED, 1, changed_event("f", spec(), "r").data)
    assert decide_delete("f", live, "why").data == {"key": "f", "reason": "why"}


def test_the_projection_keeps_the_current_flag_the_live_list_and_each_version() -> None:
    written = changed_event("f", spec(rules=[{"users": ["u1"], "value": True}]), "launch")
    ops = FlagsProjection().apply(event(CHANGED, 1, written.data, position=4))
    current, listed, history = ops
    assert isinstance(current, Upsert)
    assert isinstance(listed, Upsert)
    assert isinstance(history, Upsert)
    assert (current.collection, current.key, listed.collection, history.collection) == (
        CURRENT,
        "f",
        LIVE,
        HISTORY,
    )
    assert history.key == history_key("f", 1)
    assert current.data["rules"] == [{"users": ["u1"], "value": True}]  # absent conditions are not stored
    assert (current.data["changed_by"], current.data["reason"], current.data["version"]) == (
        "u1",
        "launch",
        1,
    )
    assert current.data["changed_at"] == "2026-01-02T03:04:05Z"
    assert history.data["flag"]["default"] is False
    gone = FlagsProjection().apply(event(DELETED, 2, {"key": "f", "reason": "done"}, position=9))
    assert isinstance(gone[1], Delete)
    assert gone[1].position == 9
    assert isinstance(gone[0], Upsert)
    assert gone[0].data["deleted"] is True
    assert isinstance(gone[2], Upsert)
    assert (gone[2].data["change"], gone[2].data["flag"]) == ("deleted", None)


def test_stored_flags_are_read_leniently() -> None:
    # a rule written before a bound existed (a rollout with three decimals) still evaluates
    old = event(
        CHANGED,
        1,
        {
            "key": "f",
            "type": "bool",
            "default": False,
            "rules": [{"rollout": 100.0, "value": True, "later": 1}],
        },
    )
    [current, *_] = FlagsProjection().apply(old)
    assert isinstance(current, Upsert)
    assert evaluate("f", msgspec.convert(current.data, StoredFlag), ME).value is True

"""Evaluating a feature flag for a caller: pure, so the HTTP reads, the SSE stream and the tests
all answer the same.

A flag that is off answers its default (`off`). Otherwise the first rule whose every condition
matches the caller (an absent list matches anyone) and whose rollout admits the caller answers
its value (`rule`, with its index); no such rule, the default (`default`).

A rollout admits a user by a stable hash of the flag key and the user id, so one user gets the
same answer on every request and every instance, and users admitted at 10% stay admitted at 20%.
A caller without a user id has no bucket: only a full rollout (100) admits it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, Literal

import msgspec

BUCKETS: Final = 10_000  # a rollout has two decimals: 12.34% admits buckets 0..1233
Reason = Literal["off", "rule", "default", "not_found"]


class StoredRule(msgspec.Struct, frozen=True, kw_only=True):
    """A rule as stored: read back without the write's checks (rules tightened later never stop
    an evaluation of a flag written before)."""

    envs: list[str] | None = None
    surfaces: list[str] | None = None
    apps: list[str] | None = None
    users: list[str] | None = None
    rollout: float | None = None
    value: Any = None


class StoredFlag(msgspec.Struct, frozen=True, kw_only=True):
    """A flag's definition as stored in its `flag.changed` event and its view documents."""

    type: str
    default: Any = None
    enabled: bool = True
    rules: list[StoredRule] = []


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who a flag is evaluated for: the request's context, never anything the caller states."""

    env: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None


class Evaluation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A flag's value for a caller, and why; `rule` is the index of the rule that answered."""

    value: Any
    reason: Reason
    rule: int | None = None


NOT_FOUND: Final = Evaluation(value=None, reason="not_found")


def evaluate(key: str, flag: StoredFlag, caller: Caller) -> Evaluation:
    if not flag.enabled:
        return Evaluation(value=flag.default, reason="off")
    for index, rule in enumerate(flag.rules):
        if _matches(rule, caller) and admitted(key, caller.user_id, rule.rollout):
            return Evaluation(value=rule.value, reason="rule", rule=index)
    return Evaluation(value=flag.default, reason="default")


def bucket(key: str, user_id: str) -> int:
    """The user's bucket for this flag, 0..9999: the same for ever, whoever computes it."""
    digest = hashlib.sha256(f"{key}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def admitted(key: str, user_id: str | None, rollout: float | None) -> bool:
    """Whether a rule's rollout (a percentage, None: everyone) admits the user."""
    if rollout is None or rollout >= 100:
        return True
    if user_id is None:
        return False  # no bucket: a partial rollout cannot place it
    return bucket(key, user_id) < round(rollout * 100)


def _matches(rule: StoredRule, caller: Caller) -> bool:
    return (
        _within(rule.envs, caller.env)
        and _within(rule.surfaces, caller.surface_id)
        and _within(rule.apps, caller.app_id)
        and _within(rule.users, caller.user_id)
    )


def _within(allowed: list[str] | None, value: str | None) -> bool:
    return allowed is None or (value is not None and value in allowed)

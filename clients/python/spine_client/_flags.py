"""The calls of feature flags: write, read, list, history, and evaluation for the caller.

A flag is evaluated for the caller's own context (the token and the client's context headers):
the server never takes a user, app or surface from the query, so `evaluate_flags` sends none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from spine_client._calls import Call, call, if_match, min_position_header, present, segment
from spine_client.types import ExpectedVersion, Flag, FlagEvaluations, FlagHistory, Flags, FlagWritten

FlagType = Literal["bool", "string", "number", "json"]


def put_flag(
    key: str,
    type: FlagType,
    default: Any,
    *,
    reason: str,
    enabled: bool = True,
    rules: Sequence[Mapping[str, Any]] = (),
    description: str | None = None,
    expected_version: ExpectedVersion | None = None,
) -> Call[FlagWritten]:
    """Write a flag's whole definition, saying why (`reason`); with `expected_version`, only if
    it still holds (409). Each rule: `value`, and optionally `envs`, `surfaces`, `apps`, `users`
    (lists of ids) and `rollout` (a percentage, two decimals at most)."""
    sent = {"type": type, "default": default, "enabled": enabled, "rules": [dict(rule) for rule in rules],
            "reason": reason, **present(description=description, expected_version=expected_version)}  # fmt: skip
    return call("PUT", _flag(key), FlagWritten, json=sent)


def get_flag(key: str, *, min_position: int | None = None) -> Call[Flag]:
    return call("GET", _flag(key), Flag, headers=min_position_header(min_position))


def delete_flag(key: str, *, reason: str, expected_version: int | None = None) -> Call[FlagWritten]:
    """Delete a flag, saying why; its history stays, and a later write brings the key back."""
    return call(
        "DELETE", _flag(key), FlagWritten, params={"reason": reason}, headers=if_match(expected_version)
    )


def list_flags(*, after: str | None = None, limit: int = 100, min_position: int | None = None) -> Call[Flags]:
    """The project's live flags, by key."""
    params = {"after": after, "limit": limit}
    return call("GET", "/v1/flags", Flags, params=params, headers=min_position_header(min_position))


def flag_history(
    key: str, *, after: int = 0, limit: int = 100, min_position: int | None = None
) -> Call[FlagHistory]:
    """Every version of a flag: who changed it, when, why, and the whole flag (None once deleted)."""
    params = {"after": after, "limit": limit}
    path = f"{_flag(key)}/history"
    return call("GET", path, FlagHistory, params=params, headers=min_position_header(min_position))


def evaluate_flags(
    keys: Sequence[str] | None = None, *, min_position: int | None = None
) -> Call[FlagEvaluations]:
    """The flags' values for the caller (every flag of the project when `keys` is None); a key
    with no live flag answers `reason == "not_found"`."""
    params = {"keys": None if keys is None else ",".join(keys)}
    return call(
        "GET", "/v1/flags/evaluate", FlagEvaluations, params=params, headers=min_position_header(min_position)
    )


def _flag(key: str) -> str:
    return f"/v1/flags/{segment(key)}"

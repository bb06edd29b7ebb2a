"""Data lifecycle calls of a project: its retention rules and runs. Data routes: the client's
project and surface say whose; writing rules and running them needs a tenant admin's token."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spine_client._calls import Call, call

Record = dict[str, Any]


def set_retention(rules: Sequence[Mapping[str, Any]]) -> Call[Record]:
    """Replace the project's rules: each `{"stream_prefix", "max_age_days"?, "keep_last"?}`."""
    return call("PUT", "/v1/retention", Record, json={"rules": list(rules)})


def get_retention() -> Call[Record]:
    """The project's rules, and `truncated_through`: how far retention removed in the client's env."""
    return call("GET", "/v1/retention", Record)


def run_retention(*, dry_run: bool = False) -> Call[Record]:
    """Run retention on the client's partition now: `{"scanned", "planned", "removed", "by_stream",
    "truncated_through"}`; a dry run removes nothing and says what would go."""
    return call("POST", "/v1/retention/runs", Record, json={"dry_run": dry_run})

"""The Python client's feature flag methods, once each, against a live server: each request
reaches its route, and each answer decodes into the client's own types."""

from __future__ import annotations

import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import Flag, FlagEvaluations
from tests.clients.conftest import USER


async def test_write_read_list_history_evaluate_and_delete_a_flag(client: SpineClient) -> None:
    rules = [{"users": [USER], "value": "mine"}, {"apps": ["app2"], "rollout": 12.5, "value": "other"}]
    written = await client.put_flag("checkout", "string", "classic", reason="launch", rules=rules)
    assert (written.key, written.version) == ("checkout", 1)
    again = await client.put_flag(
        "checkout", "string", "plain", reason="plainer", rules=rules, description="d", expected_version=1
    )
    with pytest.raises(SpineClientError) as stale:
        await client.put_flag("checkout", "string", "x", reason="late", expected_version=1)
    assert (stale.value.status, stale.value.error_code) == (409, "feature_flags.version_conflict")
    with pytest.raises(SpineClientError) as wrong:
        await client.put_flag("other", "bool", "yes", reason="typo")
    assert (wrong.value.error_code, wrong.value.problem["field"]) == (
        "feature_flags.invalid_value",
        "default",
    )

    flag = await client.get_flag("checkout", min_position=again.position)
    assert isinstance(flag, Flag)
    assert (flag.default, flag.version, flag.changed_by, flag.reason, flag.description) == (
        "plain", 2, USER, "plainer", "d")  # fmt: skip
    assert flag.rules == rules
    listed = await client.list_flags(limit=10)
    assert [f.key for f in listed.flags] == ["checkout"]

    evaluated = await client.evaluate_flags(["checkout", "nope"], min_position=again.position)
    assert isinstance(evaluated, FlagEvaluations)
    mine, nope = evaluated.flags["checkout"], evaluated.flags["nope"]
    assert (mine.value, mine.reason, mine.rule, mine.version) == ("mine", "rule", 0, 2)
    assert (nope.value, nope.reason, nope.version) == (None, "not_found", None)
    assert list((await client.evaluate_flags()).flags) == ["checkout"]

    gone = await client.delete_flag("checkout", reason="retired", expected_version=2)
    assert (gone.status, gone.version) == ("deleted", 3)
    history = await client.flag_history("checkout", min_position=gone.position)
    assert [(v.version, v.change, v.reason) for v in history.versions] == [
        (1, "changed", "launch"), (2, "changed", "plainer"), (3, "deleted", "retired")]  # fmt: skip
    assert history.versions[-1].flag is None


def test_the_sync_client_has_the_same_methods(sync_client: SyncSpineClient) -> None:
    written = sync_client.put_flag(
        "dark-mode", "bool", False, reason="r", rules=[{"users": [USER], "value": True}]
    )
    value = sync_client.evaluate_flags(["dark-mode"], min_position=written.position).flags["dark-mode"]
    assert (value.value, value.reason) == (True, "rule")

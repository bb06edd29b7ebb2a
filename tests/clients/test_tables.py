"""The tabular store's methods of the Python client, against a live server: each request reaches
its route (row keys with '/' included), and each answer decodes into the client's own types."""

from __future__ import annotations

import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import Row, TableDefinition
from tests.clients.conftest import USER

SCHEMA = {"type": "object", "properties": {"model": {"type": "string"}}, "required": ["model"]}


async def test_tables_rows_and_their_history(client: SpineClient) -> None:
    defined = await client.define_table("agents", schema=SCHEMA, description="agent configs")
    assert (defined.table, defined.version) == ("agents", 1)
    table = await client.get_table("agents", min_position=defined.position)
    assert isinstance(table, TableDefinition)
    assert (table.schema, table.description, table.updated_by) == (SCHEMA, "agent configs", USER)
    assert [t.table for t in (await client.list_tables()).tables] == ["agents"]

    first = await client.put_row("agents", "agents/planner", {"model": "big"}, expected_version="no_stream")
    assert (first.key, first.version) == ("agents/planner", 1)
    with pytest.raises(SpineClientError) as refused:
        await client.put_row("agents", "agents/critic", {"temperature": 1})
    assert (refused.value.status, refused.value.error_code) == (422, "tabular.schema_violation")
    assert refused.value.problem["field"] == "/value"
    await client.put_row("agents", "a:b@1", {"model": "small"})
    second = await client.put_row("agents", "agents/planner", {"model": "bigger"}, expected_version=1)
    with pytest.raises(SpineClientError) as stale:
        await client.put_row("agents", "agents/planner", {"model": "late"}, expected_version=1)
    assert (stale.value.status, stale.value.error_code) == (409, "tabular.version_conflict")
    row = await client.get_row("agents", "agents/planner", min_position=second.position)
    assert isinstance(row, Row)
    assert (row.value, row.version, row.change, row.updated_by) == ({"model": "bigger"}, 2, "written", USER)
    page = await client.list_rows("agents", prefix="agents/", limit=1)
    assert ([r.key for r in page.rows], page.next) == (["agents/planner"], None)
    whole = await client.list_rows("agents", limit=1)
    assert ([r.key for r in whole.rows], whole.next) == (["a:b@1"], "a:b@1")

    gone = await client.delete_row("agents", "agents/planner", expected_version=2)
    assert (gone.version, gone.deleted) == (3, True)
    with pytest.raises(SpineClientError) as missing:
        await client.get_row("agents", "agents/planner", min_position=gone.position)
    assert (missing.value.status, missing.value.error_code) == (404, "tabular.not_found")
    history = await client.row_versions("agents", "agents/planner", after=1)
    assert [(v.version, v.change, v.deleted, v.value) for v in history.versions] == [
        (2, "written", False, None), (3, "deleted", True, None)]  # fmt: skip
    assert (await client.get_row_version("agents", "agents/planner", 1)).value == {"model": "big"}


def test_the_sync_client_has_the_same_methods(sync_client: SyncSpineClient) -> None:
    written = sync_client.put_row("config", "main", None)
    assert sync_client.get_row("config", "main", min_position=written.position).value is None

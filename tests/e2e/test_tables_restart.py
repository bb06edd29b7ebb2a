"""The tabular store through a real `spine serve`: what was acknowledged (definitions, rows,
tombstones, history) is read back after a stop and a start on the same data dir, and after a
SIGKILL; row versions go on from where they were, and the schema on the log still holds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer

pytestmark = pytest.mark.e2e

URL = "/v1/tables/agents"
SCHEMA = {"type": "object", "properties": {"model": {"type": "string"}}, "required": ["model"]}


async def snapshot(http: httpx.AsyncClient, headers: dict[str, str], position: str) -> dict[str, Any]:
    """The definition, every live row, and each row's history, once the view reflects `position`."""
    waited = {**headers, "X-Spine-Min-Position": position}
    definition = await http.get(URL, headers=waited)
    listed = await http.get(f"{URL}/rows", headers=waited)
    assert (definition.status_code, listed.status_code) == (200, 200), (definition.text, listed.text)
    found: dict[str, Any] = {"definition": definition.json(), "rows": listed.json()["rows"]}
    for key in ("planner", "team/writer", "gone"):
        history = await http.get(f"{URL}/rows/{key}/versions", headers=waited)
        assert history.status_code == 200, history.text
        found[key] = history.json()["versions"]
    return found


async def test_tables_survive_a_stop_a_start_and_a_kill(server: SpineServer) -> None:
    headers = server.headers
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        defined = await http.put(
            URL, json={"schema": SCHEMA, "description": "agent configs"}, headers=headers
        )
        assert defined.status_code == 200, defined.text
        for key, model in (("planner", "big"), ("team/writer", "small"), ("gone", "tiny")):
            written = await http.put(f"{URL}/rows/{key}", json={"value": {"model": model}}, headers=headers)
            assert written.status_code == 200, written.text
        second = await http.put(
            f"{URL}/rows/planner", json={"value": {"model": "bigger"}, "expected_version": 1}, headers=headers
        )
        assert second.json()["version"] == 2, second.text
        deleted = await http.delete(f"{URL}/rows/gone", headers=headers)
        assert deleted.status_code == 200, deleted.text
        position = deleted.headers["x-spine-position"]
        before = await snapshot(http, headers, position)
    assert [(r["key"], r["value"], r["version"]) for r in before["rows"]] == [
        ("planner", {"model": "bigger"}, 2),
        ("team/writer", {"model": "small"}, 1),
    ]
    assert [v["change"] for v in before["gone"]] == ["written", "deleted"]
    assert before["definition"]["schema"] == SCHEMA

    await server.stop()
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == before
        stale = await http.put(
            f"{URL}/rows/planner", json={"value": {"model": "late"}, "expected_version": 1}, headers=headers
        )
        assert (stale.status_code, stale.json()["error_code"]) == (409, "tabular.version_conflict")
        refused = await http.put(f"{URL}/rows/planner", json={"value": {"size": 3}}, headers=headers)
        assert (refused.status_code, refused.json()["field"]) == (422, "/value"), refused.text
        third = await http.put(
            f"{URL}/rows/planner", json={"value": {"model": "best"}}, headers={**headers, "If-Match": '"2"'}
        )
        assert third.json()["version"] == 3, third.text
        back = await http.put(f"{URL}/rows/gone", json={"value": {"model": "back"}}, headers=headers)
        assert back.json()["version"] == 3  # written, deleted, written: the row's versions survived
        position = back.headers["x-spine-position"]
        after_writes = await snapshot(http, headers, position)
    assert [(r["key"], r["version"]) for r in after_writes["rows"]] == [
        ("gone", 3),
        ("planner", 3),
        ("team/writer", 1),
    ]

    await server.restart()  # SIGKILL, then start again
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert await snapshot(http, headers, position) == after_writes

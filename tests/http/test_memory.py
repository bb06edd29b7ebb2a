"""`/v1/memory/{key}`: per-user values with TTL, read from a projected view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from tests.http.conftest import Clock
from tests.http.test_events_api import assert_problem
from tests.provision import admin_headers_sync, provision_sync


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


def put(client: TestClient, headers: dict[str, str], key: str, value: Any, **body: Any) -> Any:
    return client.put(f"/v1/memory/{key}", json={"value": value, **body}, headers=headers)


def read(client: TestClient, headers: dict[str, str], key: str, after: Any = None) -> Any:
    """A read-your-writes read: waits for the view to reflect the write `after` answered."""
    wait = {"X-Spine-Min-Position": after.headers["x-spine-position"]} if after is not None else {}
    return client.get(f"/v1/memory/{key}", headers={**headers, **wait})


def test_set_get_overwrite_delete(client: TestClient, headers: dict[str, str]) -> None:
    written = put(client, headers, "goal", {"text": "ship"})
    assert written.json() == {"key": "goal", "position": int(written.headers["x-spine-position"])}
    assert read(client, headers, "goal", written).json() == {
        "key": "goal", "value": {"text": "ship"}, "found": True, "expires_at": None,
    }  # fmt: skip
    again = put(client, headers, "goal", [1, 2])
    assert read(client, headers, "goal", again).json()["value"] == [1, 2]
    deleted = client.delete("/v1/memory/goal", headers=headers)
    assert deleted.json()["status"] == "deleted"
    assert read(client, headers, "goal", deleted).json() == {
        "key": "goal",
        "value": None,
        "found": False,
        "expires_at": None,
    }


def test_an_absent_key_is_not_found(client: TestClient, headers: dict[str, str]) -> None:
    assert read(client, headers, "nothing").json()["found"] is False


def test_a_value_expires_after_its_ttl(client: TestClient, headers: dict[str, str], clock: Clock) -> None:
    written = put(client, headers, "otp", "123456", ttl_seconds=60)
    answer = read(client, headers, "otp", written).json()
    assert answer["found"] is True
    assert answer["expires_at"] == "2026-11-23T12:01:00Z"
    clock.now += timedelta(seconds=59)
    assert read(client, headers, "otp").json()["found"] is True
    clock.now += timedelta(seconds=1)
    assert read(client, headers, "otp").json() == {
        "key": "otp",
        "value": None,
        "found": False,
        "expires_at": None,
    }


def test_one_users_memory_is_invisible_to_another(client: TestClient, headers: dict[str, str]) -> None:
    mine = put(client, headers, "note", "u1's")
    other = provision_sync(client, user="u2")
    assert read(client, other, "note", mine).json()["found"] is False
    theirs = put(client, other, "note", "u2's")
    assert read(client, other, "note", theirs).json()["value"] == "u2's"
    assert read(client, headers, "note", theirs).json()["value"] == "u1's"


def test_a_min_position_never_written_is_an_invalid_cursor(
    client: TestClient, headers: dict[str, str]
) -> None:
    put(client, headers, "k", 1)
    response = client.get("/v1/memory/k", headers={**headers, "X-Spine-Min-Position": "999"})
    assert_problem(response, 400, "cursor.invalid")


@pytest.mark.parametrize(
    ("key", "body"),
    [("bad key", {"value": 1}), ("k", {}), ("k", {"value": 1, "ttl_seconds": 0})],
    ids=["key", "no-value", "ttl-zero"],
)
def test_invalid_writes_are_422(
    client: TestClient, headers: dict[str, str], key: str, body: dict[str, Any]
) -> None:
    assert_problem(client.put(f"/v1/memory/{key}", json=body, headers=headers), 422, "request.invalid")


def test_values_survive_a_restart_and_the_view_resumes(settings: Settings, clock: Clock) -> None:
    with TestClient(create_app(settings, clock=clock)) as client:
        headers = provision_sync(client)
        written = put(client, headers, "k", "kept")
        assert read(client, headers, "k", written).json()["value"] == "kept"
    with TestClient(create_app(settings, clock=clock)) as client:
        assert read(client, headers, "k").json()["value"] == "kept"
        more = put(client, headers, "k2", "new")
        assert read(client, headers, "k2", more).json()["value"] == "new"


def test_a_rebuild_from_zero_equals_the_served_view(client: TestClient, headers: dict[str, str]) -> None:
    last = None
    for i in range(60):
        last = (
            put(client, headers, f"k{i % 9}", i)
            if i % 4
            else client.delete(f"/v1/memory/k{i % 9}", headers=headers)
        )
    served = [read(client, headers, f"k{i}", last).json() for i in range(9)]
    assert any(value["found"] for value in served)

    rebuilt = client.post("/v1/projections/memory/rebuild?wait=true", headers=admin_headers_sync(client))
    assert rebuilt.status_code == 202, rebuilt.text
    assert [
        (p["project_id"], p["generation"], p["rebuild"]["state"]) for p in rebuilt.json()["projections"]
    ] == [("p1", 1, "swapped")]
    assert [read(client, headers, f"k{i}").json() for i in range(9)] == served

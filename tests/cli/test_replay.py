"""`spine replay --into`: a partition's log moved to DynamoDB, Firestore and Cosmos DB (their real
peers), verified, switched, and readers resuming at the positions they held before the move."""

from __future__ import annotations

import json
import shlex
import uuid
from contextlib import aclosing
from pathlib import Path

import anyio
import httpx
import pytest

from adapters.sqlite.spine import SQLiteSpine
from domain.append import AppendRequest
from domain.backend_url import Backend
from domain.events import Event, EventMeta, NewEvent
from domain.partition import Partition
from spine_client import SpineClient
from tests.cli.conftest import Cli
from tests.http.conftest import LiveServer
from tests.peers import cosmos, dynamodb, firestore

PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")


def _dynamodb(monkeypatch: pytest.MonkeyPatch) -> str:
    # the peer accepts any keys; Spine takes them from the default AWS chain, never from a URL
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    table = f"spine-move-{uuid.uuid4().hex[:12]}"
    return f"dynamodb://{table}?region={dynamodb.REGION}&endpoint_url={dynamodb.endpoint()}&create_table=true"


def _firestore(_: pytest.MonkeyPatch) -> str:
    return f"firestore://spine-move-{uuid.uuid4().hex[:12]}?emulator_host={firestore.emulator_host()}"


def _cosmos(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_SPINE_COSMOS_KEY", cosmos.KEY)  # by reference only (lab reads secret://env/…)
    config = {"endpoint": cosmos.endpoint(), "database": f"spine-move-{uuid.uuid4().hex[:12]}",
              "key": "secret://env/TEST_SPINE_COSMOS_KEY"}  # fmt: skip
    return Backend(backend_type="cosmos", config=config).url


@pytest.fixture(params=[_dynamodb, _firestore, _cosmos], ids=["dynamodb", "firestore", "cosmos"])
def target_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    return str(request.param(monkeypatch))


def _write(http: httpx.Client, headers: dict[str, str]) -> None:
    """25 events over three streams, interleaved, some appended together, plus a memory write."""
    for i in range(8):
        for stream in ("agent-a", "agent-b"):
            body = {"stream": stream, "events": [{"type": "step.done", "data": {"i": i, "s": stream}}]}
            assert http.post("/v1/events", json=body, headers=headers).status_code == 201
    batch = {
        "stream": "plan",
        "events": [{"type": "plan.made", "data": {"n": n}, "id": f"plan-{n}"} for n in range(8)],
    }
    assert http.post("/v1/events", json=batch, headers=headers).status_code == 201
    assert http.put("/v1/memory/goal", json={"value": "ship"}, headers=headers).status_code == 200


def _events(http: httpx.Client, headers: dict[str, str], after: int) -> list[dict[str, object]]:
    answer = http.get("/v1/events", params={"after": after, "limit": 1000}, headers=headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


def test_a_moved_log_keeps_every_position_and_readers_resume_where_they_were(
    cli: Cli, live: LiveServer, http: httpx.Client, admin: str, member: str, tmp_path: Path, target_url: str
) -> None:
    headers = {"Authorization": f"Bearer {member}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
    _write(http, headers)
    before = _events(http, headers, after=10)
    assert [e["position"] for e in before] == list(range(11, 26))

    moved = cli("replay", "--tenant", "t1", "--project", "p1", "--into", target_url, "--range-size", "7",
                "--data-dir", str(tmp_path), token=None)  # fmt: skip
    assert "copied 25 events (25 in all)" in moved.stderr
    assert moved.stderr.count("equal") == 4
    assert "DIFFERS" not in moved.stderr
    [switch] = [
        line.strip() for line in moved.stdout.splitlines() if line.strip().startswith("spine routes set")
    ]

    again = cli("replay", "--tenant", "t1", "--project", "p1", "--into", target_url, "--data-dir", str(tmp_path),
                token=None)  # fmt: skip
    assert "copied 0 events (25 in all)" in again.stderr  # resumable: nothing twice

    cli(*shlex.split(switch)[1:], token=admin)  # the printed command, as printed
    assert _events(http, headers, after=10) == before  # same ids, positions, versions and times
    appended = http.post(
        "/v1/events", json={"stream": "agent-a", "events": [{"type": "step.done"}]}, headers=headers
    )
    assert appended.json()["first_position"] == 26
    assert appended.json()["stream_version"] == 9

    async def follow_from_20() -> list[Event]:
        async with SpineClient(live.url, token=member, project_id="p1", surface_id="web") as client:
            seen = []
            with anyio.fail_after(10):
                async with aclosing(client.follow(after=20)) as events:  # Last-Event-ID: 20
                    async for event in events:
                        seen.append(event)
                        if event.position == 26:
                            return seen
        raise AssertionError("unreachable")

    resumed = anyio.run(follow_from_20)
    assert [e.position for e in resumed] == [21, 22, 23, 24, 25, 26]
    assert [e.id for e in resumed[:5]] == [e["id"] for e in before[10:]]
    wait = {**headers, "X-Spine-Min-Position": "26"}  # the view, rebuilt from the new log
    assert http.get("/v1/memory/goal", headers=wait).json()["value"] == "ship"

    settled = cli("replay", "--tenant", "t1", "--project", "p1", "--into", target_url, "--data-dir", str(tmp_path),
                  token=None, code=1)  # fmt: skip
    assert "already lives in" in settled.output


def test_a_target_holding_another_log_is_refused(
    cli: Cli, http: httpx.Client, member: str, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {member}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
    _write(http, headers)

    async def foreign_event() -> None:
        async with SQLiteSpine(tmp_path / "elsewhere.db") as other:
            meta = EventMeta(tenant_id="t1", env="dev", project_id="p1")
            await other.append(PARTITION, AppendRequest(stream="x", events=[NewEvent(type="x.y")], meta=meta))

    anyio.run(foreign_event)
    refused = cli("replay", "--tenant", "t1", "--project", "p1", "--into", "sqlite:///elsewhere.db",
                  "--data-dir", str(tmp_path), token=None, code=1)  # fmt: skip
    assert "holds another log" in refused.output


def test_into_refuses_filters_and_a_malformed_url(cli: Cli, tmp_path: Path) -> None:
    args = ("replay", "--tenant", "t1", "--project", "p1", "--data-dir", str(tmp_path))
    assert "do not apply" in cli(*args, "--into", "memory://", "--after", "3", token=None, code=2).output
    assert "needs config ['region']" in cli(*args, "--into", "dynamodb://t", token=None, code=2).output
    assert "starts with" in cli(*args, "--system-url", "postgres://db", token=None, code=2).output


def test_replay_reads_the_system_spine_a_system_url_names(
    cli: Cli, http: httpx.Client, member: str, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {member}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
    _write(http, headers)
    elsewhere = tmp_path / "elsewhere"
    args = ("replay", "--tenant", "t1", "--project", "p1", "--data-dir", str(elsewhere), "--no-progress")
    printed = cli(*args, "--system-url", f"sqlite:///{tmp_path / 'spine.db'}", token=None)
    assert [json.loads(line)["position"] for line in printed.stdout.splitlines()] == list(range(1, 26))


def test_replay_of_an_unknown_project_or_tenant_says_so(cli: Cli, member: str, tmp_path: Path) -> None:
    args = ("replay", "--data-dir", str(tmp_path), "--no-progress")
    project = cli(*args, "--tenant", "t1", "--project", "nope", token=None, code=1)
    assert (project.stdout, project.stderr) == (
        "",
        "Error: project.not_found: project 'nope' does not exist\n",
    )
    tenant = cli(*args, "--tenant", "t404", "--project", "p1", token=None, code=1)
    assert (tenant.stdout, tenant.stderr) == ("", "Error: tenant.not_found: tenant 't404' does not exist\n")
    moved = cli(*args, "--tenant", "t1", "--project", "nope", "--into", "sqlite:///x.db", token=None, code=1)
    assert moved.stderr.startswith("Error: project.not_found")
    # a project that exists with nothing in its log: nothing to print, and no error
    assert cli(*args, "--tenant", "t1", "--project", "p1", token=None).output == ""


def test_serve_refuses_a_malformed_system_url_before_starting(cli: Cli) -> None:
    assert (
        "needs config ['region']" in cli("serve", "--system-url", "dynamodb://t", token=None, code=2).output
    )


def test_replay_help_names_the_move() -> None:
    from click.testing import CliRunner

    from app.cli import main

    shown = CliRunner().invoke(main, ["replay", "--help"])
    assert shown.exit_code == 0
    assert "--into URL" in shown.output
    assert "Last-Event-ID" in shown.output


def test_replay_shows_personal_fields_as_the_api_does(
    cli: Cli, http: httpx.Client, admin: str, member: str, tmp_path: Path
) -> None:
    """Opened while the user's key lives, `[erased]` once it is destroyed; never sealed text."""
    headers = {"Authorization": f"Bearer {member}", "X-Project-Id": "p1", "X-Surface-Id": "web"}
    assert http.put("/v1/memory/goal", json={"value": "ada@example.org"}, headers=headers).status_code == 200
    args = ("replay", "--tenant", "t1", "--project", "p1", "--data-dir", str(tmp_path), "--no-progress")
    [line] = cli(*args, token=None).stdout.splitlines()
    assert json.loads(line)["data"]["value"] == "ada@example.org"
    erased = http.delete("/v1/tenants/t1/users/u1/data", headers={"Authorization": f"Bearer {admin}"})
    assert erased.status_code == 200, erased.text
    [line] = cli(*args, token=None).stdout.splitlines()
    assert json.loads(line)["data"]["value"] == "[erased]"

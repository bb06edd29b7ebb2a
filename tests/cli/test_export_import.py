"""`spine export` and `spine import`: a tenant moved between two deployments, each a real `spine
serve` on its own data dir, and checked through both HTTP APIs.

The tenant has two projects and two envs (staging routed to a SQLite file of its own), records
of every control-plane kind, and events of several stores, all written through the API. The
archive imported into an empty deployment answers the same reads there, and exported again from
it is the same bytes, file by file; a changed file is refused with nothing written; an import run
twice changes nothing; an import killed half-way (SIGKILL) completes when run again.
"""

from __future__ import annotations

import gzip
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import anyio
import httpx
import pytest

from adapters.sqlite.spine import SQLiteSpine
from app.settings import Settings
from domain.append import AppendRequest
from domain.events import EventMeta, NewEvent
from domain.partition import Partition
from domain.personal import PERSONAL_FIELDS
from tests.cli.conftest import Cli
from tests.http.conftest import LiveServer, start_live_server
from tests.peers import dynamodb, free_port
from tests.provision import BOOTSTRAP_KEY

ENVS = ("dev", "staging")
PROJECTS = ("p1", "p2")
ORIGINS = ["https://app.example.com", "http://localhost:5173"]
LIMITS = {"classes": {"writes": {"limit": 1000, "window_seconds": 60}}}
STAGING_ROUTE = {
    "resource_kind": "event_spine",
    "tenant_id": "t1",
    "env": "staging",
    "backend_type": "sqlite",
}


class Deployment:
    """One `spine serve` (in a thread) on its own data dir, with a system admin's headers."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir()
        self.data_dir = data_dir
        self.live: LiveServer = start_live_server(Settings(data_dir=data_dir, bootstrap_key=BOOTSTRAP_KEY))
        self.http = httpx.Client(base_url=self.live.url, timeout=10)
        token = ok(self.http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY}))
        self.admin = {"Authorization": f"Bearer {token.json()['token']}"}

    def member(self, env: str, project: str, user: str = "u1") -> dict[str, str]:
        """Data-route headers of `user` of t1 in `env`/`project` (a token minted by this deployment)."""
        token = ok(self.http.post("/v1/tenants/t1/tokens", json={"user_id": user}, headers=self.admin))
        return {"Authorization": f"Bearer {token.json()['token']}", "X-Env": env, "X-Project-Id": project,
                "X-Surface-Id": "web"}  # fmt: skip

    def args(self) -> tuple[str, ...]:
        return ("--data-dir", str(self.data_dir), "--no-progress")

    def close(self) -> None:
        self.http.close()
        self.live.server.should_exit = True
        self.live.thread.join(timeout=10)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path / "source")
    yield deployment
    deployment.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path / "target")
    yield deployment
    deployment.close()


@pytest.fixture
def run() -> Cli:
    return Cli("http://127.0.0.1:1")  # offline commands: no service is called


def ok(answer: httpx.Response, *statuses: int) -> httpx.Response:
    assert answer.status_code in (statuses or (200, 201)), answer.text
    return answer


def provision(spine: Deployment) -> None:
    """t1 (lab): two projects, a surface, an app with origins, two members, rate limits, and a
    staging route moved once (so its switch is in the tenant's audit trail)."""
    admin = spine.admin
    ok(spine.http.post("/v1/tenants", json={"tenant_id": "t1", "name": "Acme", "mode": "lab"}, headers=admin))
    for project in PROJECTS:
        body = {"project_id": project, "name": f"Project {project}"}
        ok(spine.http.post("/v1/tenants/t1/projects", json=body, headers=admin))
    ok(spine.http.post("/v1/tenants/t1/surfaces", json={"surface_id": "web", "name": "Web"}, headers=admin))
    app = {"name": "App", "origins": ORIGINS}
    ok(
        spine.http.put(
            "/v1/tenants/t1/apps/app1", json={"name": "App", "origins": ORIGINS[:1]}, headers=admin
        )
    )
    ok(spine.http.put("/v1/tenants/t1/apps/app1", json=app, headers={**admin, "If-Match": '"1"'}))
    for user, role in (("u1", "member"), ("u2", "admin")):
        ok(spine.http.post("/v1/tenants/t1/members", json={"user_id": user, "role": role}, headers=admin))
    ok(spine.http.put("/v1/tenants/t1/limits", json=LIMITS, headers=admin))
    for path in ("t1-staging-old.db", "t1-staging.db"):
        ok(spine.http.put("/v1/routes", json={**STAGING_ROUTE, "config": {"path": path}}, headers=admin))


def write(spine: Deployment, env: str, project: str) -> None:
    """Events of several stores in one partition: memory, a session, a blackboard entry written
    twice, a saved flow, budget usage and plain events (a batch with client ids)."""
    headers = spine.member(env, project)
    ok(spine.http.put("/v1/memory/goal", json={"value": {"text": f"ship {env} {project}"}}, headers=headers))
    for content in ("hello", "how are you?"):
        body = {"role": "user", "content": content, "metadata": {"z": 1, "a": [2, {"y": 3, "b": 4}]}}
        ok(spine.http.post("/v1/sessions/chat-1/messages", json=body, headers=headers))
    ok(spine.http.put("/v1/runs/r1/blackboard/plan", json={"value": {"step": 1}}, headers=headers))
    ok(spine.http.put("/v1/runs/r1/blackboard/plan", json={"value": {"step": 2}, "expected_version": 1},
                      headers=headers))  # fmt: skip
    flow = {"id": "onboarding", "name": "Onboarding", "body": {"nodes": ["welcome", env]}}
    ok(spine.http.post("/v1/saves/flows", json=flow, headers=headers))
    ok(
        spine.http.post(
            "/v1/budget/usage", json={"amount": 1200, "unit": "tokens", "id": "use-1"}, headers=headers
        )
    )
    batch = {
        "stream": "plan",
        "events": [{"type": "plan.made", "data": {"n": n}, "id": f"plan-{n}"} for n in range(3)],
    }
    ok(spine.http.post("/v1/events", json=batch, headers=headers))


def reads(spine: Deployment, env: str, project: str) -> dict[str, Any]:
    """What the partition answers: its events, and each store's view once it reflects them all."""
    headers = spine.member(env, project)
    events = ok(spine.http.get("/v1/events", params={"limit": 1000}, headers=headers)).json()
    waited = {**headers, "X-Spine-Min-Position": str(events["head"])}
    paths = ("/v1/memory/goal", "/v1/sessions/chat-1", "/v1/runs/r1/blackboard", "/v1/runs/r1/blackboard/plan",
             "/v1/saves/flows/onboarding", "/v1/saves/flows/onboarding/versions", "/v1/budget")  # fmt: skip
    return {"events": events, **{path: ok(spine.http.get(path, headers=waited)).json() for path in paths}}


def unsealed(event: dict[str, Any]) -> dict[str, Any]:
    """An event with its personal fields left out: exported sealed, served opened."""
    fields = PERSONAL_FIELDS.get(event["type"], ())
    return {**event, "data": {k: v for k, v in event["data"].items() if k not in fields}}


def files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()
    }


def system_head(run: Cli, spine: Deployment) -> int:
    """The target's control-plane position: what an import writes to before any log."""
    printed = run("replay", "--tenant", "t_system", "--project", "_", *spine.args(), token=None)
    return len(printed.stdout.splitlines())


def tampered(archive: Path, into: Path) -> Path:
    """A copy of `archive` whose dev/p1 log says something else (a real edit, not a cut file)."""
    into.mkdir()
    for path, data in files(archive).items():
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        (into / path).write_bytes(data)
    log = into / "logs/dev/p1.jsonl.gz"
    text = gzip.decompress(log.read_bytes()).replace(b"Onboarding", b"Offboarding")  # not sealed: personal
    log.write_bytes(gzip.compress(text, mtime=0))
    return into


def test_a_tenant_exported_and_imported_answers_the_same_and_exports_the_same_bytes(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    provision(source)
    for env in ENVS:
        for project in PROJECTS:
            write(source, env, project)

    first = tmp_path / "first"
    exported = run("export", "--tenant", "t1", "--out", str(first), *source.args(), token=None)
    assert "exported t1: " in exported.stdout
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["envs"] == ["dev", "staging"]  # staging: named by the tenant's route
    assert [(p["env"], p["project_id"]) for p in manifest["partitions"]] == [
        ("dev", "p1"), ("dev", "p2"), ("staging", "p1"), ("staging", "p2"), ("staging", "_audit"),
    ]  # fmt: skip
    assert all(p["head"] == p["events"] == 10 for p in manifest["partitions"][:4])
    assert set(files(first)) == {"manifest.json", "control_plane.jsonl.gz", "routes.jsonl.gz",
                                 "data_keys.jsonl.gz", *(p["file"] for p in manifest["partitions"])}  # fmt: skip
    assert b"ship dev p1" not in gzip.decompress((first / "logs/dev/p1.jsonl.gz").read_bytes())  # sealed
    records = [
        json.loads(line)
        for line in gzip.decompress((first / "control_plane.jsonl.gz").read_bytes()).splitlines()
    ]
    assert [r["type"] for r in records] == ["tenant.created", "project.created", "project.created",
                                            "surface.created", "app.created", "member.set", "member.set", "limits.set"]  # fmt: skip
    assert records[4]["data"]["origins"] == ORIGINS  # the app as it stands, not as it was created
    assert not any("token" in json.dumps(record) for record in records)

    before = system_head(run, target)
    forged = tampered(first, tmp_path / "tampered")
    refused = run("import", str(forged), *target.args(), token=None, code=1)
    assert refused.stderr.startswith("Error: archive.invalid: checksum mismatch: logs/dev/p1.jsonl.gz")
    assert len(refused.stderr.splitlines()) == 1
    assert system_head(run, target) == before  # nothing written
    ok(target.http.get("/v1/tenants/t1", headers=target.admin), 404)

    imported = run("import", str(first), "--with-routes", *target.args(), token=None)
    assert "8 records and 1 routes created, 41 events copied (41 in 5 logs)" in imported.stdout
    for env in ENVS:
        for project in PROJECTS:
            assert reads(target, env, project) == reads(source, env, project)
    assert (target.data_dir / "t1-staging.db").exists()  # the route, written, placed the staging logs

    second = tmp_path / "second"
    run("export", "--tenant", "t1", "--out", str(second), *target.args(), token=None)
    assert files(second) == files(first)  # byte-equal, the manifest included

    settled = system_head(run, target)
    again = run("import", str(first), "--with-routes", *target.args(), token=None)
    assert "0 records and 0 routes created, 0 events copied (41 in 5 logs)" in again.stdout
    assert system_head(run, target) == settled
    for env in ENVS:
        assert reads(target, env, "p1") == reads(source, env, "p1")


def test_a_log_retention_thinned_out_lands_at_its_positions_and_exports_the_same_bytes(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    """Removed positions stay gaps in the target (filled while copying, then removed), the rules
    and the partition's mark go with the tenant, and the target's readers are told the same."""
    provision(source)
    write(source, "dev", "p1")
    boss = source.member("dev", "p1", user="u2")  # an admin of t1
    rules = {
        "rules": [{"stream_prefix": "plan", "keep_last": 1}, {"stream_prefix": "blackboard:", "keep_last": 1}]
    }
    ok(source.http.put("/v1/retention", json=rules, headers=boss))
    assert ok(source.http.post("/v1/retention/runs", json={}, headers=boss)).json()["removed"] == 3

    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--project", "p1", "--env", "dev", "--out", str(archive), *source.args(),
        token=None)  # fmt: skip
    [entry] = json.loads((archive / "manifest.json").read_text())["partitions"]
    assert (entry["head"], entry["events"]) == (10, 7)
    imported = run("import", str(archive), "--with-routes", *target.args(), token=None)
    assert (
        "9 records and 1 routes created, 7 events copied (7 in 1 logs); every log verified" in imported.stdout
    )
    assert reads(target, "dev", "p1") == reads(source, "dev", "p1")
    theirs, ours = source.member("dev", "p1"), target.member("dev", "p1")
    for after in (0, 4, 9):
        answers = [ok(spine.http.get("/v1/events", params={"after": after}, headers=who))
                   for spine, who in ((source, theirs), (target, ours))]  # fmt: skip
        assert answers[0].json() == answers[1].json()
        assert answers[0].headers.get("x-spine-truncated") == answers[1].headers.get("x-spine-truncated")
    assert ok(target.http.get("/v1/retention", headers=ours)).json() == ok(
        source.http.get("/v1/retention", headers=theirs)
    ).json() | {"position": ANY}

    again = tmp_path / "again"
    run("export", "--tenant", "t1", "--project", "p1", "--env", "dev", "--out", str(again), *target.args(),
        token=None)  # fmt: skip
    assert files(again) == files(archive)  # byte-equal, the gaps and the mark included
    settled = run("import", str(archive), "--with-routes", *target.args(), token=None)
    assert "0 records and 0 routes created, 0 events copied" in settled.stdout


def test_an_import_killed_half_way_completes_when_run_again(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    provision(source)
    count = 12_000  # one append each: the copy lands them in many commits, so a kill finds it mid-way
    partition = Partition(tenant_id="t1", env="dev", project_id="p1")

    async def appended() -> None:
        meta = EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u1")

        async def append(spine: SQLiteSpine, n: int) -> None:
            event = NewEvent(type="step.done", data={"n": n}, id=f"step-{n}")
            await spine.append(partition, AppendRequest(stream=f"agent-{n % 7}", events=[event], meta=meta))

        async with SQLiteSpine(source.data_dir / "spine.db") as spine:
            for first in range(0, count, 500):  # concurrent appends: group-committed, each its own event
                async with anyio.create_task_group() as appends:
                    for n in range(first, first + 500):
                        appends.start_soon(append, spine, n)

    anyio.run(appended)
    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--project", "p1", "--env", "dev", "--out", str(archive), *source.args(),
        token=None)  # fmt: skip

    command = [sys.executable, "-m", "app", "import", str(archive), *target.args()]
    with (tmp_path / "import.err").open("wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        head = _copied_so_far(target.data_dir / "spine.db", partition, process, tmp_path / "import.err")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    copied = _head(target.data_dir / "spine.db", partition)
    assert 0 < copied < count, "the import was not killed half-way"
    assert head <= copied

    resumed = run("import", str(archive), *target.args(), token=None)
    assert (
        f"0 records and 0 routes created, {count - copied} events copied ({count} in 1 logs)"
        in resumed.stdout
    )
    theirs = source.member("dev", "p1")
    ours = target.member("dev", "p1")
    for after in (0, max(copied - 5, 0), count - 10):
        params = {"after": after, "limit": 1000}
        assert (ok(target.http.get("/v1/events", params=params, headers=ours)).json()
                == ok(source.http.get("/v1/events", params=params, headers=theirs)).json())  # fmt: skip


def _head(db: Path, partition: Partition) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
        try:
            row = connection.execute(
                "SELECT MAX(position) FROM events WHERE pkey = ?", (partition.key,)
            ).fetchone()
        except sqlite3.OperationalError:  # no events table yet
            return 0
    return int(row[0] or 0)


def _copied_so_far(db: Path, partition: Partition, process: subprocess.Popen[bytes], errors: Path) -> int:
    """Polls the target's log (bounded) until the import has copied some of it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        head = _head(db, partition)
        if head > 0:
            return head
        if process.poll() is not None:
            raise AssertionError(f"the import ended first: {errors.read_text()}")
        time.sleep(0.005)
    raise AssertionError("the import copied nothing within 60 s")


def test_conflicts_are_refused_with_nothing_written(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    provision(source)
    write(source, "dev", "p1")
    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--env", "dev", "--out", str(archive), *source.args(), token=None)

    # the same tenant id, another name: a record held otherwise
    ok(
        target.http.post(
            "/v1/tenants", json={"tenant_id": "t1", "name": "Other", "mode": "lab"}, headers=target.admin
        )
    )
    before = system_head(run, target)
    refused = run("import", str(archive), *target.args(), token=None, code=1)
    assert refused.stderr.startswith("Error: archive.conflict: the target holds tenant.created t1 otherwise")
    assert system_head(run, target) == before


def test_a_target_holding_another_log_of_the_partition_is_refused(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    provision(source)
    write(source, "dev", "p1")
    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--env", "dev", "--out", str(archive), *source.args(), token=None)
    provision(target)  # the same records: held alike
    ok(target.http.post("/v1/events", json={"stream": "x", "events": [{"type": "x.y"}]},
                        headers=target.member("dev", "p1")))  # fmt: skip
    before = system_head(run, target)
    refused = run("import", str(archive), *target.args(), token=None, code=1)
    assert refused.stderr == (
        "Error: archive.conflict: logs/dev/p1.jsonl.gz: the target's event at position 1 is not the "
        "archive's: it holds another log\n"
    )
    assert system_head(run, target) == before


def test_errors_are_one_line_and_an_exit_code(run: Cli, source: Deployment, tmp_path: Path) -> None:
    provision(source)
    unknown = run(
        "export", "--tenant", "t404", "--out", str(tmp_path / "a"), *source.args(), token=None, code=1
    )
    assert unknown.stderr == "Error: tenant.not_found: tenant 't404' does not exist\n"
    project = run("export", "--tenant", "t1", "--project", "nope", "--out", str(tmp_path / "a"), *source.args(),
                  token=None, code=1)  # fmt: skip
    assert project.stderr == "Error: project.not_found: project 'nope' does not exist\n"
    assert not (tmp_path / "a").exists()

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    full = run(
        "export", "--tenant", "t1", "--out", str(tmp_path / "full"), *source.args(), token=None, code=2
    )
    assert "exists and is not an empty directory" in full.stderr

    missing = run("import", str(tmp_path / "nowhere"), *source.args(), token=None, code=1)
    assert missing.stderr.startswith("Error: archive.invalid: cannot read manifest.json in ")
    assert len(missing.stderr.splitlines()) == 1
    not_one = tmp_path / "not-one"
    not_one.mkdir()
    (not_one / "manifest.json").write_text('{"hello": "world"}')
    refused = run("import", str(not_one), *source.args(), token=None, code=1)
    assert refused.stderr.startswith(
        "Error: archive.invalid: manifest.json is not a tenant archive's manifest"
    )

    # an event spine that does not answer: said in one line, after the adapter's own timeouts
    port = free_port()
    config = {"table": "gone", "region": "us-east-1", "endpoint_url": f"http://127.0.0.1:{port}",
              "connect_timeout_seconds": 1, "request_timeout_seconds": 1}  # fmt: skip
    route = {**STAGING_ROUTE, "env": "dev", "project_id": "p1", "backend_type": "dynamodb", "config": config}
    ok(source.http.put("/v1/routes", json=route, headers=source.admin))
    down = run("export", "--tenant", "t1", "--env", "dev", "--out", str(tmp_path / "b"), *source.args(),
               token=None, code=1)  # fmt: skip
    assert down.stderr.startswith("Error: event_spine.backend_unavailable: ")
    assert len(down.stderr.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_help_names_what_an_archive_holds_and_what_it_does_not() -> None:
    from click.testing import CliRunner

    from app.cli import main

    shown = CliRunner().invoke(main, ["export", "--help"])
    assert "No token and no secret is in it" in shown.output
    shown = CliRunner().invoke(main, ["import", "--help"])
    assert "--with-routes" in shown.output
    assert "Exit codes" in shown.output


def test_a_partition_routed_to_dynamodb_exports_the_events_it_serves(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = dynamodb.endpoint()  # skips locally without DynamoDB Local; fails under CI=true
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")  # the peer checks that keys are there, not what they are
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    provision(source)
    config = {"table": f"spine-export-{uuid.uuid4().hex[:12]}", "region": dynamodb.REGION,
              "endpoint_url": endpoint, "create_table": True}  # fmt: skip
    route = {**STAGING_ROUTE, "env": "dev", "project_id": "p1", "backend_type": "dynamodb", "config": config}
    ok(source.http.put("/v1/routes", json=route, headers=source.admin))
    write(source, "dev", "p1")
    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--project", "p1", "--env", "dev", "--out", str(archive), *source.args(),
        token=None)  # fmt: skip
    served = ok(
        source.http.get("/v1/events", params={"limit": 1000}, headers=source.member("dev", "p1"))
    ).json()
    exported = [
        json.loads(line)
        for line in gzip.decompress((archive / "logs/dev/p1.jsonl.gz").read_bytes()).splitlines()
    ]
    assert [unsealed(event) for event in exported] == [unsealed(event) for event in served["events"]]
    assert [e["data"]["value"]["$sealed"] for e in exported if e["type"] == "memory.set"] == ["v1"]
    routes = [
        json.loads(line) for line in gzip.decompress((archive / "routes.jsonl.gz").read_bytes()).splitlines()
    ]
    assert [(r["env"], r.get("project_id", "*"), r["backend_type"]) for r in routes] == [
        ("dev", "p1", "dynamodb"), ("staging", "*", "sqlite"),
    ]  # fmt: skip

    # into a deployment that keeps the tenant in its own lab store (no --with-routes): the same log
    run("import", str(archive), *target.args(), token=None)
    again = tmp_path / "again"
    run(
        "export",
        "--tenant",
        "t1",
        "--project",
        "p1",
        "--env",
        "dev",
        "--out",
        str(again),
        *target.args(),
        token=None,
    )
    assert files(again)["logs/dev/p1.jsonl.gz"] == files(archive)["logs/dev/p1.jsonl.gz"]
    assert reads(target, "dev", "p1") == reads(source, "dev", "p1")


def test_no_machine_path_is_in_an_archive(run: Cli, source: Deployment, tmp_path: Path) -> None:
    provision(source)
    write(source, "dev", "p1")
    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--out", str(archive), *source.args(), token=None)
    for path, data in files(archive).items():
        text = gzip.decompress(data) if path.endswith(".gz") else data
        assert str(tmp_path).encode() not in text, path


def test_an_erased_user_stays_erased_in_the_archive_and_where_it_is_imported(
    run: Cli, source: Deployment, target: Deployment, tmp_path: Path
) -> None:
    """The archive carries the live users' data keys, not the erased one's: in the target, the
    live user's memory opens and the erased user's reads `[erased]`."""
    provision(source)
    for user in ("u1", "u2"):
        headers = source.member("dev", "p1", user)
        ok(source.http.put("/v1/memory/goal", json={"value": f"secret of {user}"}, headers=headers))
    ok(source.http.delete("/v1/tenants/t1/users/u1/data", headers=source.admin))
    archive = tmp_path / "archive"
    run("export", "--tenant", "t1", "--project", "p1", "--env", "dev", "--out", str(archive), *source.args(),
        token=None)  # fmt: skip
    keys = [
        json.loads(line)
        for line in gzip.decompress((archive / "data_keys.jsonl.gz").read_bytes()).splitlines()
    ]
    assert [key["user_id"] for key in keys] == ["u2"]
    assert not any(b"secret of" in data for data in files(archive).values())
    run("import", str(archive), *target.args(), token=None)
    for user, value in (("u1", "[erased]"), ("u2", "secret of u2")):
        headers = target.member("dev", "p1", user)
        head = ok(target.http.get("/v1/events", headers=headers)).json()["head"]
        waited = {**headers, "X-Spine-Min-Position": str(head)}
        assert ok(target.http.get("/v1/memory/goal", headers=waited)).json()["value"] == value

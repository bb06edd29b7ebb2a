"""`spine retention run` beside a live `spine serve` on the same data dir: the dry run removes
nothing, the run removes what the rules expire, and the service's readers are told."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from app.cli import main
from tests.provision import provision_sync


def spine(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_dry_run_then_a_run_beside_the_service(http: httpx.Client, tmp_path: Path) -> None:
    boss = provision_sync(http, user="boss", role="admin")
    for _ in range(4):
        answer = http.post(
            "/v1/events", json={"stream": "chat:1", "events": [{"type": "said"}]}, headers=boss
        )
        assert answer.status_code == 201, answer.text
    assert "no project has retention rules" in spine("retention", "run", "--data-dir", str(tmp_path))
    rules = {"rules": [{"stream_prefix": "chat:", "keep_last": 1}]}
    assert http.put("/v1/retention", json=rules, headers=boss).status_code == 200

    planned = spine("retention", "run", "--dry-run", "--data-dir", str(tmp_path))
    assert planned == "t1/dev/p1: scanned 4, would remove 3 (chat:1 3)\n"
    assert len(http.get("/v1/events", headers=boss).json()["events"]) == 4

    done = spine("retention", "run", "--tenant", "t1", "--data-dir", str(tmp_path), "--no-progress")
    assert done == "t1/dev/p1: scanned 4, removed 3 (chat:1 3)\n"
    assert [e["position"] for e in http.get("/v1/events", headers=boss).json()["events"]] == [4]
    deadline = time.monotonic() + 20  # the service follows the control plane the CLI wrote to
    while http.get("/v1/retention", headers=boss).json()["truncated_through"] != 3:
        assert time.monotonic() < deadline, "the service never saw the run's mark"
        time.sleep(0.05)
    assert http.get("/v1/events", headers=boss).headers["x-spine-truncated"] == "3"
    assert spine("retention", "run", "--data-dir", str(tmp_path)) == "t1/dev/p1: scanned 1, removed 0\n"


def test_an_unknown_tenant_is_one_line(tmp_path: Path, http: httpx.Client) -> None:
    result = CliRunner().invoke(main, ["retention", "run", "--tenant", "nope", "--data-dir", str(tmp_path)])
    assert (result.exit_code, result.output.strip()) == (
        1,
        "Error: tenant.not_found: tenant 'nope' does not exist",
    )

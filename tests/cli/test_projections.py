"""`spine projections status|rebuild|snapshot` against a live server, through click's runner."""

from __future__ import annotations

import httpx

from tests.cli.conftest import Cli, as_json
from tests.provision import provision_sync


def test_status_and_a_rebuild_from_the_command_line(cli: Cli, admin: str, http: httpx.Client) -> None:
    headers = provision_sync(http)
    for i in range(30):
        written = http.put(f"/v1/runs/r1/blackboard/k{i % 4}", json={"value": i}, headers=headers)
        assert written.status_code == 200, written.text
    waited = {**headers, "X-Spine-Min-Position": written.headers["x-spine-position"]}
    board = http.get("/v1/runs/r1/blackboard", headers=waited).json()

    table = cli("projections", "status", token=admin).stdout
    for shown in ("blackboard", "t1", "p1", "30"):
        assert shown in table
    [view] = as_json(cli("projections", "status", "--json", "--name", "blackboard", token=admin))[
        "projections"
    ]
    assert (view["generation"], view["position"], view["lag"]) == (0, 30, 0)

    done = cli("projections", "rebuild", "blackboard", "--no-progress", token=admin)
    assert "blackboard t1/dev/p1: swapped, generation 1, position 30" in done.stdout
    assert http.get("/v1/runs/r1/blackboard", headers=waited).json() == board

    taken = cli("projections", "snapshot", "blackboard", "--tenant", "t1", token=admin)
    assert "blackboard t1/dev/p1: taken at position 30, 4 documents" in taken.stdout
    [view] = as_json(cli("projections", "status", "--json", "--name", "blackboard", token=admin))[
        "projections"
    ]
    assert view["snapshot"]["position"] == 30
    again = as_json(cli("projections", "status", "--json", "--name", "blackboard", token=admin))
    assert again["projections"][0]["snapshot"] == view["snapshot"]
    for source in ("snapshot", "start"):
        cli("projections", "rebuild", "blackboard", "--from", source, "--no-progress", token=admin)
        [view] = as_json(cli("projections", "status", "--json", "--name", "blackboard", token=admin))[
            "projections"
        ]
        assert (view["rebuild"]["from"], view["rebuild"]["state"]) == (source, "swapped")
        assert http.get("/v1/runs/r1/blackboard", headers=waited).json() == board

    nothing = cli("projections", "rebuild", "sessions", "--no-progress", token=admin)
    assert "nothing to rebuild" in nothing.stderr
    unknown = cli("projections", "rebuild", "nope", token=admin, code=1)
    assert "404 projection.not_found" in unknown.stderr
    assert "nothing to snapshot" in cli("projections", "snapshot", "sessions", token=admin).stderr


def test_every_projections_command_has_help(cli: Cli) -> None:
    for command in (
        ["projections"],
        ["projections", "status"],
        ["projections", "rebuild"],
        ["projections", "snapshot"],
    ):
        assert "Usage:" in cli(*command, "--help", token=None).stdout

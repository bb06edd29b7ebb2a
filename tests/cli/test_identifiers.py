"""`spine projections rebuild` of a partition that does not exist fails before anything starts."""

from __future__ import annotations

import httpx
import pytest

from tests.cli.conftest import Cli, as_json
from tests.provision import provision_sync


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        (["--project", "p1", "--env", "nope"], "404 env.not_found"),  # no route names it, no events in it
        (["--project", "nope"], "404 project.not_found"),
        (["--project", "p1", "--env", "a/b"], "422 request.invalid"),
        (["--project", "a/b"], "422 request.invalid"),
    ],
    ids=["unknown-env", "unknown-project", "malformed-env", "malformed-project"],
)
def test_a_rebuild_of_a_partition_that_does_not_exist_fails(
    cli: Cli, admin: str, http: httpx.Client, options: list[str], shown: str
) -> None:
    provision_sync(http)
    failed = cli(
        "projections", "rebuild", "memory", "--tenant", "t1", *options, "--no-progress", token=admin, code=1
    )
    assert shown in failed.stderr
    assert as_json(cli("projections", "status", "--json", token=admin))["projections"] == []

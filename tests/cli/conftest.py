"""The CLI against a live server, through click's runner.

Every invocation goes through `Cli.__call__`, which asserts the exit code, that no unexpected
exception escaped, and that the token is in no output (stdout, stderr), errors included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.settings import Settings
from tests.http.conftest import LiveServer, start_live_server
from tests.provision import BOOTSTRAP_KEY, provision_sync


class Cli:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *args: str, token: str | None, code: int = 0, url: str | None = None) -> Result:
        env = {"SPINE_URL": url or self.url, "SPINE_TOKEN": token, "COLUMNS": "250"}
        result = CliRunner().invoke(main, list(args), env=env)
        if token:
            for shown in (result.output, result.stdout, result.stderr):
                assert token not in shown
        if result.exception is not None:  # ClickException and ctx.exit end as SystemExit; nothing else may
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert result.exit_code == code, result.output
        return result


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = start_live_server(Settings(data_dir=tmp_path, bootstrap_key=BOOTSTRAP_KEY))
    yield server
    server.server.should_exit = True
    server.thread.join(timeout=10)


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        yield client


@pytest.fixture
def cli(live: LiveServer) -> Cli:
    return Cli(live.url)


@pytest.fixture
def admin(http: httpx.Client) -> str:
    answer = http.post("/v1/auth/bootstrap", headers={"X-Bootstrap-Key": BOOTSTRAP_KEY})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


@pytest.fixture
def member(http: httpx.Client, admin: str) -> str:
    """u1, a member (not an admin) of t1, a lab tenant with project p1."""
    return provision_sync(http)["Authorization"].removeprefix("Bearer ")


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)

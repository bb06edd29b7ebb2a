"""Any identifier, however hostile, is refused with a 4xx problem or round-trips a restart.

Each example takes a few generated strings and uses each, through the HTTP API only, as a memory
key, a blackboard run and key, a stream name and a project id. A string that breaks the
identifier's one domain rule (`domain.identifiers`) must be refused with a 4xx problem,
never a 5xx; one that keeps to it must be written, then read back unchanged after a real restart
(the service stopped and started again on the same data directory). It runs against uvicorn, not
the test client, because the test client decodes a path twice (`%252F` arrives as `/`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.settings import Settings
from domain.identifiers import IDENTIFIER_PATTERN, NAME_PATTERN, matches
from domain.owned import owning_route
from tests.http.conftest import start_live_server
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

# a restart costs about half a second: few examples, each with a few names (~30 names in all)
PROPERTY = settings(max_examples=10, deadline=None)
TYPE = "test.written"
HOSTILE = [
    "",
    ".",
    "..",
    "%2F",
    "a%2Fb",
    "a/b",
    "0/",
    "a b",
    "é",
    "k\n",
    "-x",
    "~x",
    "_x",
    "x" * 129,
    "x" * 257,
]
NAMES = st.one_of(
    st.sampled_from([*HOSTILE, "x" * 128, "x" * 256, "a:b@c+d=e~f"]),
    st.text(max_size=40),
    st.text(alphabet="ab/ .%2F:é~_-@+=", max_size=12),
    st.from_regex(NAME_PATTERN, fullmatch=True),
)


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A data directory with t1, p1 and a member, copied for each example: provisioning once."""
    template = tmp_path_factory.mktemp("template")
    with service(settings_for(template)) as client:
        return template, provision_sync(client), admin_headers_sync(client)


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")


@contextmanager
def service(config: Settings) -> Iterator[httpx.Client]:
    live = start_live_server(config)
    try:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            yield client
    finally:
        live.server.should_exit = True
        live.thread.join(timeout=10)


def refused(answer: httpx.Response) -> bool:
    """True for a 4xx problem; fails the example for a 5xx, or a 4xx that is no problem."""
    assert answer.status_code < 500, answer.text
    if answer.status_code < 400:
        return False
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.text
    assert answer.json()["error_code"], answer.text
    return True


def segment(text: str) -> str:
    return quote(text, safe="")


def write(client: httpx.Client, member: dict[str, str], admin: dict[str, str], name: str) -> dict[str, str]:
    """Each use of `name` that was written, with its position; checks each answer on the way."""
    answers = {
        "memory": client.put(f"/v1/memory/{segment(name)}", json={"value": name}, headers=member),
        "blackboard": client.put(
            f"/v1/runs/{segment(name)}/blackboard/{segment(name)}", json={"value": name}, headers=member
        ),
        "stream": client.post(
            "/v1/events",
            json={"stream": name, "events": [{"type": TYPE, "data": {"v": name}}]},
            headers=member,
        ),
        "project": client.post(
            "/v1/tenants/t1/projects", json={"project_id": name, "name": "x"}, headers=admin
        ),
    }
    is_name, is_id = matches(name, NAME_PATTERN), matches(name, IDENTIFIER_PATTERN)
    valid = {
        "memory": is_name,
        "blackboard": is_name,
        "stream": is_name and owning_route(name, [TYPE]) is None,  # owned streams go through their route
        "project": is_id and not name.startswith("_"),  # `_…`: reserved for Spine's own partitions
    }
    written = {}
    for use, answer in answers.items():
        assert refused(answer) != valid[use], (use, name, answer.status_code, answer.text)
        if valid[use]:
            written[use] = answer.headers.get("x-spine-position", "0")
    return written


def read(client: httpx.Client, member: dict[str, str], admin: dict[str, str], name: str, uses: set[str],
         wait: dict[str, str]) -> None:  # fmt: skip
    if "memory" in uses:
        answer = client.get(f"/v1/memory/{segment(name)}", headers={**member, **wait})
        assert answer.status_code == 200, answer.text
        assert answer.json()["value"] == name
    if "blackboard" in uses:
        answer = client.get(
            f"/v1/runs/{segment(name)}/blackboard/{segment(name)}", headers={**member, **wait}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["value"] == name
    if "stream" in uses:
        answer = client.get(f"/v1/streams/{segment(name)}", headers=member)
        assert answer.status_code == 200, answer.text
        assert [e["data"]["v"] for e in answer.json()["events"]] == [name]
    if "project" in uses:
        projects = client.get("/v1/tenants/t1", headers=admin).json()["projects"]
        assert name in [p["project_id"] for p in projects]
        answer = client.get("/v1/memory/k", headers={**member, "X-Project-Id": name})
        assert answer.status_code == 200, answer.text
        assert answer.json()["found"] is False


@PROPERTY
@given(names=st.lists(NAMES, min_size=1, max_size=3, unique=True))
@example(names=["", ".", ".."])
@example(names=["%2F", "a/b", "0/"])
@example(names=["a b", "é", "x" * 257])
def test_an_identifier_is_refused_with_a_4xx_or_round_trips_a_restart(
    tmp_path_factory: pytest.TempPathFactory,
    provisioned: tuple[Path, dict[str, str], dict[str, str]],
    names: list[str],
) -> None:
    template, member, admin = provisioned
    data_dir = tmp_path_factory.mktemp("spine")
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    with service(settings_for(data_dir)) as client:
        written = {name: write(client, member, admin, name) for name in names}
    positions = [p for uses in written.values() for use, p in uses.items() if use != "project"]  # the
    wait = {"X-Spine-Min-Position": max(positions, key=int, default="0")}  # project's is another log's
    with service(settings_for(data_dir)) as client:  # a real restart
        for name, uses in written.items():
            read(client, member, admin, name, set(uses), wait)

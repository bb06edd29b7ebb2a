"""`spine routes …` and `spine doctor` against a live server (fixtures: tests/cli/conftest.py).

Every invocation goes through `Cli.__call__`, which asserts the exit code, that no unexpected
exception escaped, and that the token is in no output (stdout, stderr), errors included.
"""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest
from click.testing import CliRunner

from app.cli import main
from domain.routing import REQUIRED_KINDS, RESOURCE_KINDS
from tests.cli.conftest import Cli, as_json
from tests.conftest import REDIS_URL
from tests.http.conftest import LiveServer
from tests.provision import BOOTSTRAP_KEY, provision_sync

EVENT_SPINE_A = ("--kind", "event_spine", "--tenant", "t1", "--env", "dev", "--backend", "sqlite")


def test_set_list_switch_history_delete(cli: Cli, admin: str, member: str) -> None:
    empty = cli("routes", "list", token=admin)
    assert (empty.stdout, empty.stderr) == ("", "no routes\n")

    created = cli(
        "routes", "set", *EVENT_SPINE_A, "--config", '{"path": "a.db"}', "--tier", "gold", token=admin
    )
    assert "route event_spine/t1/dev/*" in created.stdout
    assert '{"path": "a.db"}' in created.stdout
    assert "switched" not in created.stdout

    listed = cli("routes", "list", "--tenant", "t1", token=admin)
    for shown in ("event_spine", "t1", "sqlite", "a.db", "gold"):
        assert shown in listed.stdout
    [route] = as_json(cli("routes", "list", "--json", "--kind", "event_spine", token=admin))["routes"]
    assert (route["backend_type"], route["config"], route["tier"]) == ("sqlite", {"path": "a.db"}, "gold")
    assert as_json(cli("routes", "list", "--json", "--env", "prod", token=admin)) == {"routes": []}

    moved = cli(
        "routes",
        "set",
        *EVENT_SPINE_A,
        "--config",
        '{"path": "b.db"}',
        "--rationale",
        "bigger disk",
        token=admin,
    )
    assert "switched from sqlite to sqlite" in moved.stdout
    assert "bigger disk" in moved.stdout

    changes = as_json(cli("routes", "history", "--json", "--tenant", "t1", token=admin))["changes"]
    assert [(c["action"], c["route"]["config"]["path"]) for c in changes] == [
        ("set", "a.db"),
        ("set", "b.db"),
    ]
    assert changes[1]["route"]["previous_backend_type"] == "sqlite"
    assert (changes[1]["rationale"], changes[1]["actor"]) == ("bigger disk", "admin")
    table = cli("routes", "history", token=admin).stdout
    assert "created" in table
    assert "switched from sqlite" in table

    deleted = cli(
        "routes",
        "delete",
        "--kind",
        "event_spine",
        "--tenant",
        "t1",
        "--env",
        "dev",
        "--rationale",
        "done",
        token=admin,
    )
    assert deleted.stdout.startswith("deleted event_spine/t1/dev/* (position ")
    assert as_json(cli("routes", "list", "--json", token=admin)) == {"routes": []}
    assert cli("routes", "list", token=admin).stdout == ""
    after = as_json(cli("routes", "history", "--json", token=admin))["changes"]
    assert [(c["action"], c["rationale"]) for c in after][-1] == ("deleted", "done")
    # deleting it again: the server's 404 problem, as `status error_code: message`
    again = cli(
        "routes", "delete", "--kind", "event_spine", "--tenant", "t1", "--env", "dev", token=admin, code=1
    )
    assert "Error: 404 route.not_found: " in again.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("routes", "list"),
        ("routes", "history"),
        ("routes", "set", *EVENT_SPINE_A, "--config", '{"path": "a.db"}'),
        ("routes", "delete", "--kind", "event_spine", "--tenant", "t1", "--env", "dev"),
        ("doctor",),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_member_is_refused_clearly(cli: Cli, member: str, command: tuple[str, ...]) -> None:
    refused = cli(*command, token=member, code=1)
    assert refused.stdout == ""
    assert refused.stderr.startswith("Error: 403 auth.forbidden: ")


@pytest.mark.parametrize(
    "command",
    [
        (),
        ("routes",),
        ("routes", "list"),
        ("routes", "set"),
        ("routes", "delete"),
        ("routes", "history"),
        ("doctor",),
    ],
    ids=lambda command: " ".join(command) or "spine",
)
def test_help_works_for_every_command_without_a_token(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"], env={"SPINE_TOKEN": None})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    if command[-1:] in (("list",), ("set",), ("delete",), ("history",), ("doctor",)):
        words = " ".join(result.output.split())  # help text is wrapped to the terminal
        assert "--token TEXT Bearer token [env SPINE_TOKEN;" in words
        assert "[default: http://127.0.0.1:8080]" in words


def test_the_token_is_never_echoed(cli: Cli, admin: str) -> None:
    forged = "not-a-jwt-" + uuid.uuid4().hex
    refused = cli("routes", "list", token=forged, code=1)
    assert refused.stderr.startswith("Error: 401 auth.invalid_token: ")
    # what the HTTP library would echo in its own error is refused before it is sent
    for bad in ("tok-é-" + uuid.uuid4().hex, "tok " + uuid.uuid4().hex, "tok\n" + uuid.uuid4().hex):
        malformed = cli("routes", "list", token=bad, code=2)
        assert "printable ASCII" in malformed.stderr
        assert bad.split()[-1] not in malformed.output
    missing = cli("routes", "list", token=None, code=2)
    assert "Missing option '--token'" in missing.stderr


def test_an_unreachable_server_is_said_so(cli: Cli, admin: str) -> None:
    with socket.socket() as bound:  # bound, not listening: connections are refused while it is held
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        for command in (("routes", "list"), ("doctor",)):
            unreachable = cli(*command, token=admin, url=url, code=1)
            assert unreachable.stderr.startswith(f"Error: cannot reach {url}: ")


def test_bad_input_is_refused_before_or_by_the_server(
    cli: Cli, admin: str, member: str, http: httpx.Client
) -> None:
    not_json = cli("routes", "set", *EVENT_SPINE_A, "--config", "{path: a.db}", token=admin, code=2)
    assert "Invalid value for '--config': not JSON" in not_json.stderr
    cli("routes", "set", *EVENT_SPINE_A, "--config", '["a.db"]', token=admin, code=2)
    pasted = "sk-" + uuid.uuid4().hex
    no_name = cli("routes", "set", *EVENT_SPINE_A, "--secret-ref", pasted, token=admin, code=2)
    assert pasted not in no_name.output
    # an inline secret in the config: the server refuses it and does not echo it, nor do we
    cosmos = ("--kind", "event_spine", "--tenant", "t1", "--env", "dev", "--backend", "cosmos")
    config = json.dumps({"endpoint": "e", "database": "d", "key": pasted})
    inline = cli("routes", "set", *cosmos, "--config", config, token=admin, code=1)
    assert inline.stderr.startswith("Error: 422 routing.secret_in_config: config.key looks like a secret")
    assert pasted not in inline.output
    by_ref = json.dumps({"endpoint": "e", "database": "d", "key": "secret://env/COSMOS_KEY"})
    stored = cli(
        "routes",
        "set",
        *cosmos,
        "--config",
        by_ref,
        "--secret-ref",
        "extra=secret://env/EXTRA",
        "--json",
        token=admin,
    )
    assert as_json(stored)["secret_refs"] == {"extra": "secret://env/EXTRA"}
    # the mode rules are the server's: an embedded backend for a saas tenant
    provision_sync(http, tenant="t9", mode="saas")
    saas = ("--kind", "event_spine", "--tenant", "t9", "--env", "dev", "--backend", "sqlite")
    forbidden = cli("routes", "set", *saas, "--config", '{"path": "x.db"}', token=admin, code=1)
    assert forbidden.stderr.startswith("Error: 400 routing.forbidden_backend: ")
    unknown_kind = cli("routes", "list", "--kind", "nope", token=admin, code=2)
    assert "Invalid value for '--kind'" in unknown_kind.stderr


def test_data_is_shown_as_it_is_never_as_rich_markup(cli: Cli, admin: str, member: str) -> None:
    note = "[bold red]why[/bold red] [/] [link=x]"
    cli("routes", "set", *EVENT_SPINE_A, "--config", '{"path": "[a].db"}', "--rationale", note, token=admin)
    assert note in cli("routes", "history", token=admin).stdout
    assert "[a].db" in cli("routes", "list", token=admin).stdout


def test_doctor_of_a_saas_tenant_without_routes_fails(cli: Cli, admin: str, http: httpx.Client) -> None:
    provision_sync(http, tenant="t9", mode="saas")
    answer = cli("doctor", "--tenant", "t9", "--json", token=admin, code=1)
    report = as_json(answer)
    assert (report["deployment"], report["env"], report["ready"]) == (
        "lab",
        "dev",
        True,
    )  # lab is always ready
    assert {c["resource_kind"] for c in report["checks"]} == set(RESOURCE_KINDS)
    assert {(c["tenant_id"], c["project_id"], c["status"], c["backend_type"]) for c in report["checks"]} == {
        ("t9", "p1", "missing", None)
    }
    codes = {c["resource_kind"]: c["error_code"] for c in report["checks"]}
    assert codes["event_spine"] == "event_spine.missing_route"
    assert codes["tabular_store"] == "save_store.missing_route"
    assert {c["resource_kind"] for c in report["checks"] if c["optional"]} == set(RESOURCE_KINDS) - set(
        REQUIRED_KINDS
    )  # kinds added later: missing, refused, but not a failure of the deployment
    required = len(REQUIRED_KINDS)
    assert f"not healthy: {required} of {len(RESOURCE_KINDS)} checks not ok" in answer.stderr
    assert (
        f"note: {len(RESOURCE_KINDS) - required} of {len(RESOURCE_KINDS)} checks are optional"
        in answer.stderr
    )
    table = cli("doctor", "--tenant", "t9", token=admin, code=1)
    assert "deployment lab, env dev: ready" in table.stdout
    assert "missing (event_spine.missing_route)" in table.stdout
    # an embedded platform default is refused to a saas tenant: `forbidden`, naming the backend
    default = ("--kind", "event_spine", "--tenant", "*", "--env", "dev", "--backend", "sqlite")
    cli("routes", "set", *default, "--config", '{"path": "default.db"}', token=admin)
    [check] = as_json(cli("doctor", "--tenant", "t9", "--json", token=admin, code=1))["checks"][:1]
    assert (check["status"], check["backend_type"], check["error_code"]) == (
        "forbidden",
        "sqlite",
        "routing.forbidden_backend",
    )
    assert (
        "forbidden (routing.forbidden_backend)" in cli("doctor", "--tenant", "t9", token=admin, code=1).stdout
    )


def test_doctor_of_a_default_lab_setup_passes_with_warnings(cli: Cli, admin: str, member: str) -> None:
    """A lab tenant without a single route: every kind is a lab fallback, a warning, not a failure."""
    shown = cli("doctor", token=admin)
    assert "deployment lab, env dev: ready" in shown.stdout
    # every kind but rate limits, which a lab tenant without a route goes without, and objects,
    # whose bytes go to a directory of the data dir
    assert shown.stdout.count("lab falls back to the embedded store") == len(RESOURCE_KINDS) - 2
    assert shown.stdout.count("lab: no rate limit applies") == 1
    assert shown.stdout.count("lab falls back to the filesystem store under the data directory") == 1
    assert shown.stderr == (
        f"warning: {len(RESOURCE_KINDS)} of {len(RESOURCE_KINDS)} checks have no route: "
        "lab serves them from the embedded store\n"
    )
    report = as_json(cli("doctor", "--json", token=admin))
    assert {(c["tenant_id"], c["status"], c["lab_fallback"]) for c in report["checks"]} == {
        ("t1", "missing", True)
    }


def test_doctor_of_a_lab_tenant(cli: Cli, admin: str, member: str) -> None:
    """In lab a kind without a route is `missing`, with the warning that the embedded store serves
    it (`lab_fallback`): a warning, so doctor passes; a route that fails is a failure. Every routed
    kind is probed (the log's head, a view store's checkpoint) and shows its round trip."""
    cli("routes", "set", *EVENT_SPINE_A, "--config", '{"path": "t1.db"}', token=admin)
    answer = cli("doctor", "--tenant", "t1", "--json", token=admin)
    kinds = len(RESOURCE_KINDS)
    assert f"warning: {kinds - 1} of {kinds} checks have no route" in answer.stderr
    partial = as_json(answer)
    by_kind = {c["resource_kind"]: c for c in partial["checks"]}
    assert by_kind["event_spine"]["status"] == "ok"
    assert by_kind["event_spine"]["backend_type"] == "sqlite"
    assert isinstance(by_kind["event_spine"]["round_trip_ms"], float)
    assert by_kind["event_spine"]["warnings"] == []
    assert by_kind["memory_store"] == {
        "tenant_id": "t1",
        "env": "dev",
        "project_id": "p1",
        "resource_kind": "memory_store",
        "backend_type": None,
        "status": "missing",
        "round_trip_ms": None,
        "warnings": ["lab falls back to the embedded store"],
        "error_code": "memory_store.missing_route",
        "breaker": None,
        "retry_after_seconds": None,
        "lab_fallback": True,
        "optional": False,
    }
    for kind in RESOURCE_KINDS:
        if kind not in ("event_spine", "rate_limit", "object_store"):
            route = ("--kind", kind, "--tenant", "t1", "--env", "dev", "--backend", "memory")
            cli("routes", "set", *route, token=admin)
    objects = (
        "--kind",
        "object_store",
        "--tenant",
        "t1",
        "--env",
        "dev",
        "--backend",
        "filesystem",
    )  # lab only
    cli("routes", "set", *objects, "--config", json.dumps({"path": "objects-t1"}), token=admin)
    limits = ("--kind", "rate_limit", "--tenant", "t1", "--env", "dev", "--backend", "redis")  # redis only
    cli("routes", "set", *limits, "--config", json.dumps({"url": REDIS_URL}), token=admin)
    healthy = cli("doctor", "--tenant", "t1", token=admin)
    assert "deployment lab, env dev: ready" in healthy.stdout
    assert healthy.stderr == ""
    report = as_json(cli("doctor", "--tenant", "t1", "--json", token=admin))
    assert {c["status"] for c in report["checks"]} == {"ok"}
    assert all(isinstance(c["round_trip_ms"], float) for c in report["checks"])
    # a store that cannot be opened (the path is a directory): `unreachable`, and exit 1 again
    cli("routes", "set", *EVENT_SPINE_A, "--config", '{"path": "."}', token=admin)
    broken = as_json(cli("doctor", "--tenant", "t1", "--json", token=admin, code=1))["checks"]
    assert [(c["resource_kind"], c["status"], c["error_code"]) for c in broken if c["status"] != "ok"] == [
        ("event_spine", "unreachable", "event_spine.backend_unavailable")
    ]
    # an env without those routes: lab fallbacks again, warnings only
    other_env = as_json(cli("doctor", "--tenant", "t1", "--env", "prod", "--json", token=admin))
    assert other_env["env"] == "prod"
    assert {(c["status"], c["lab_fallback"]) for c in other_env["checks"]} == {("missing", True)}


def test_bootstrap_prints_a_token_and_never_the_key(cli: Cli, live: LiveServer) -> None:
    """`spine bootstrap` goes through the Python client like every other command."""
    done = cli("bootstrap", "--url", live.url, "--key", BOOTSTRAP_KEY, token=None)
    token = done.stdout.strip()
    assert done.stderr == "token for admin of t_system (keep it secret):\n"
    assert as_json(cli("routes", "list", "--json", token=token)) == {"routes": []}
    wrong = "wrong-" + uuid.uuid4().hex
    refused = cli("bootstrap", "--url", live.url, "--key", wrong, token=None, code=1)
    assert refused.stderr.startswith("Error: 403 auth.bootstrap_refused: ")
    assert wrong not in refused.output

"""`spine routes …` and `spine doctor`: the routing registry and the diagnostics of a running Spine.

Every command is one HTTP call through `Api` (app/cli/connection.py: the Python client,
`SyncSpineClient`), which turns a problem+json answer into a `ClickException` reading
`<status> <error_code>: <message>`, and a transport failure into "cannot reach URL". The bearer
token goes in the `Authorization` header only: it is never printed, and it is scrubbed from every
message the CLI shows.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import click
from rich.table import Table
from rich.text import Text

from app.cli.connection import Api, ProblemError, cell, connection, json_flag, new_console
from domain.routing import RESOURCE_KINDS, BackendType

BACKEND_TYPES: tuple[str, ...] = get_args(BackendType)
_STATUS_STYLE = {"ok": "green", "missing": "red", "forbidden": "red", "unreachable": "red"}


def _key(route_key: list[str] | tuple[str, ...]) -> str:
    return "/".join(route_key)


def _route_key(route: dict[str, Any]) -> str:
    return _key([route["resource_kind"], route["tenant_id"], route["env"], route.get("project_id", "*")])


def _same_backend(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The server's rule for a switch: backend type, config or secret references changed."""
    fields = ("backend_type", "config", "secret_refs")
    return all((a.get(name) or None) == (b.get(name) or None) for name in fields)


@click.group()
def routes() -> None:
    """Read and write the routing registry: which backend holds each tenant's resources."""


@routes.command("list")
@click.option("--tenant", default=None, help="Only this tenant's routes (* for the platform defaults).")
@click.option("--kind", type=click.Choice(RESOURCE_KINDS), default=None, help="Only this resource kind.")
@click.option("--env", default=None, help="Only this environment.")
@json_flag
@connection
def list_routes(api: Api, tenant: str | None, kind: str | None, env: str | None, as_json: bool) -> None:
    """List the routes this token may read (system admins: all; tenant admins: theirs and the defaults)."""
    response = api.call("GET", "/v1/routes", params={"tenant_id": tenant, "resource_kind": kind, "env": env})
    if as_json:
        click.echo(response.text)
        return
    found = response.json().get("routes", [])
    if not found:
        click.echo("no routes", err=True)
        return
    table = Table(
        "kind", "tenant", "env", "project", "backend", "config", "secret refs", "tier", "last switch"
    )
    for route in found:
        switch = None
        if route.get("last_switch_time"):
            switch = f"from {route.get('previous_backend_type')} at {route['last_switch_time']}"
        table.add_row(
            *map(
                cell,
                (
                    route["resource_kind"],
                    route["tenant_id"],
                    route["env"],
                    route.get("project_id", "*"),
                    route["backend_type"],
                    route.get("config"),
                    route.get("secret_refs"),
                    route.get("tier"),
                    switch,
                ),
            )
        )
    new_console().print(table)


def _parse_config(_: click.Context, __: click.Parameter, value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        config = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise click.BadParameter('must be a JSON object, such as {"path": "a.db"}')
    return config


def _parse_secret_refs(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    refs: dict[str, str] = {}
    for item in values:
        name, sep, ref = item.partition("=")
        # the value may be a secret pasted by mistake: messages name the reference's name only
        if not sep or not name or not ref:
            raise click.BadParameter("expected NAME=secret://…")
        if name in refs:
            raise click.BadParameter(f"{name!r} given twice")
        refs[name] = ref
    return refs


@routes.command("set")
@click.option("--kind", required=True, type=click.Choice(RESOURCE_KINDS), help="Resource kind.")
@click.option("--tenant", required=True, help="Tenant id, or * for the platform default.")
@click.option("--env", required=True, help="Environment.")
@click.option("--project", default="*", show_default=True, help="Project id, or * for tenant-wide.")
@click.option("--backend", required=True, type=click.Choice(BACKEND_TYPES), help="Backend type.")
@click.option(
    "--config",
    callback=_parse_config,
    help='Backend config as a JSON object, e.g. \'{"path": "a.db"}\'; secrets only as secret:// refs.',
)
@click.option(
    "--secret-ref",
    "secret_refs",
    multiple=True,
    callback=_parse_secret_refs,
    metavar="NAME=secret://…",
    help="A secret reference (secret://env|file|aws-sm/…); repeatable.",
)
@click.option("--tier", default=None, help="Service tier, as a note.")
@click.option("--cost-notes", default=None, help="Cost notes.")
@click.option(
    "--rationale", default=None, help="Why: recorded with the change, and in the audit on a switch."
)
@json_flag
@connection
def set_route(
    api: Api,
    kind: str,
    tenant: str,
    env: str,
    project: str,
    backend: str,
    config: dict[str, Any],
    secret_refs: dict[str, str],
    tier: str | None,
    cost_notes: str | None,
    rationale: str | None,
    as_json: bool,
) -> None:
    """Create or change a route (system admins); a change of backend, config or refs is a switch.

    The route is replaced as a whole: an option not given (--tier, --cost-notes, --config…) is
    cleared, not kept from the route it replaces.
    """
    body: dict[str, Any] = {
        "resource_kind": kind,
        "tenant_id": tenant,
        "env": env,
        "project_id": project,
        "backend_type": backend,
        "config": config,
        "secret_refs": secret_refs,
    }
    optional = {"tier": tier, "cost_notes": cost_notes, "switch_rationale": rationale}
    body.update({name: value for name, value in optional.items() if value is not None})
    response = api.call("PUT", "/v1/routes", body=body)
    if as_json:
        click.echo(response.text)
        return
    stored = response.json()
    table = Table("field", "value", title=f"route {_route_key(stored)}", title_justify="left")
    for label, name in (
        ("backend", "backend_type"),
        ("config", "config"),
        ("secret refs", "secret_refs"),
        ("tier", "tier"),
        ("cost notes", "cost_notes"),
        ("rationale", "switch_rationale"),
        ("previous backend", "previous_backend_type"),
        ("last switch", "last_switch_time"),
        ("position", "position"),
    ):
        table.add_row(label, cell(stored.get(name)))
    console = new_console()
    console.print(table)
    if stored.get("switched"):
        console.print(
            Text(f"switched from {stored.get('previous_backend_type')} to {stored['backend_type']}")
        )


@routes.command("delete")
@click.option("--kind", required=True, type=click.Choice(RESOURCE_KINDS), help="Resource kind.")
@click.option("--tenant", required=True, help="Tenant id, or * for the platform default.")
@click.option("--env", required=True, help="Environment.")
@click.option("--project", default="*", show_default=True, help="Project id, or * for tenant-wide.")
@click.option("--rationale", default=None, help="Why: recorded in the route's history.")
@json_flag
@connection
def delete_route(
    api: Api, kind: str, tenant: str, env: str, project: str, rationale: str | None, as_json: bool
) -> None:
    """Delete a route (system admins); lab tenants then fall back to the lab store, others fail."""
    params = {
        "resource_kind": kind,
        "tenant_id": tenant,
        "env": env,
        "project_id": project,
        "rationale": rationale,
    }
    response = api.call("DELETE", "/v1/routes", params=params)
    if as_json:
        click.echo(response.text)
        return
    answer = response.json()
    click.echo(f"deleted {_key([kind, tenant, env, project])} (position {answer.get('position')})")


@routes.command("history")
@click.option("--tenant", default=None, help="Only this tenant's routes (* for the platform defaults).")
@click.option("--kind", type=click.Choice(RESOURCE_KINDS), default=None, help="Only this resource kind.")
@json_flag
@connection
def history(api: Api, tenant: str | None, kind: str | None, as_json: bool) -> None:
    """Every change of the routes this token may read, oldest first, with the switches marked."""
    response = api.call("GET", "/v1/routes/history", params={"tenant_id": tenant, "resource_kind": kind})
    if as_json:
        click.echo(response.text)
        return
    changes = response.json().get("changes", [])
    if not changes:
        click.echo("no route changes", err=True)
        return
    table = Table("position", "at", "action", "route", "backend", "change", "actor", "rationale")
    current: dict[str, dict[str, Any]] = {}  # the route each key had before this change
    for change in changes:
        key = _key(change["key"])
        route = change.get("route")
        before = current.pop(key, None)
        if change["action"] == "set" and route is not None:
            current[key] = route
            if before is None:
                what = "created"
            elif _same_backend(before, route):
                what = "updated"
            else:
                what = f"switched from {before.get('backend_type')}"
        else:
            what = change["action"]
        table.add_row(
            *map(
                cell,
                (
                    change["position"],
                    change["at"],
                    change["action"],
                    key,
                    route.get("backend_type") if route else None,
                    what,
                    change.get("actor"),
                    change.get("rationale"),
                ),
            )
        )
    new_console().print(table)


@click.command()
@click.option("--tenant", default=None, help="Only this tenant's checks.")
@click.option("--env", default=None, help="The environment to check [default: the server's].")
@json_flag
@connection
def doctor(api: Api, tenant: str | None, env: str | None, as_json: bool) -> None:
    """Check that every route resolves and its backend answers; exit 1 on a failing check or a
    server that is not ready. Lab fallbacks (a kind without a route, served by the embedded
    store) are warnings: a default lab setup passes."""
    try:
        response = api.call("GET", "/v1/diagnostics", params={"tenant_id": tenant, "env": env})
    except ProblemError as exc:
        if exc.status == 404 and exc.error_code == "http.not_found":
            raise click.ClickException(f"{exc.message} (a Spine without /v1/diagnostics: too old?)") from None
        raise
    answer = response.json()
    checks = answer.get("checks") or []
    fallbacks = [check for check in checks if check.get("lab_fallback") is True]
    optional = [c for c in checks if c.get("optional") is True]
    excused = [*fallbacks, *optional]  # warnings and notes: the deployment works
    failing = [c for c in checks if c.get("status") != "ok" and c not in excused]
    ready = answer.get("ready") is True
    if as_json:
        click.echo(response.text)
    else:
        _print_diagnostics(answer, checks)
    if fallbacks:
        click.echo(
            f"warning: {len(fallbacks)} of {len(checks)} checks have no route: "
            "lab serves them from the embedded store",
            err=True,
        )
    if optional:
        click.echo(
            f"note: {len(optional)} of {len(checks)} checks are optional kinds without a route: "
            "their requests are refused (503), the rest of the service is unaffected",
            err=True,
        )
    if failing or not ready:
        click.echo(
            f"not healthy: {len(failing)} of {len(checks)} checks not ok"
            + ("" if ready else ", and the server is not ready"),
            err=True,
        )
        click.get_current_context().exit(1)


def _print_diagnostics(answer: dict[str, Any], checks: list[dict[str, Any]]) -> None:
    ready = answer.get("ready") is True
    console = new_console()
    console.print(
        Text(f"deployment {answer.get('deployment')}, env {answer.get('env')}: ")
        + Text("ready" if ready else "NOT ready", style="green" if ready else "bold red")
    )
    table = Table("tenant", "env", "project", "kind", "backend", "status", "round-trip ms", "warnings")
    for check in checks:
        status = str(check.get("status"))
        excused = check.get("lab_fallback") is True or check.get("optional") is True
        style = "yellow" if excused else _STATUS_STYLE.get(status, "red")
        shown = Text(status, style=style)
        if check.get("error_code"):
            shown.append(f" ({check['error_code']})")
        millis = check.get("round_trip_ms")
        table.add_row(
            cell(check.get("tenant_id")),
            cell(check.get("env")),
            cell(check.get("project_id")),
            cell(check.get("resource_kind")),
            cell(check.get("backend_type")),
            shown,
            Text(f"{millis:.1f}" if isinstance(millis, int | float) else "-", justify="right"),
            cell("\n".join(map(str, check.get("warnings") or [])) or None),
        )
    console.print(table)
    if not ready and answer.get("missing_platform_routes"):  # why a production deployment is not ready
        missing = ", ".join(map(str, answer["missing_platform_routes"]))
        console.print(Text(f"no platform default route (tenant *) in env {answer.get('env')} for: {missing}"))

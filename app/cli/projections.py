"""`spine projections status|rebuild|snapshot`: how far each view is, blue-green rebuilds, and the
snapshots they start from, over HTTP.

A rebuild runs inside the service (it owns the views and their runners); this command starts it
and shows its progress until every partition's new generation has swapped in. Stopping the
command does not stop the rebuild; running it again resumes one that the service was stopped in.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.cli.connection import Api, cell, connection, json_flag, new_console

POLL_SECONDS = 0.5


@click.group()
def projections() -> None:
    """Views derived from the log: their positions, lag and rebuilds."""


@projections.command("status")
@click.option("--tenant", default=None, help="Only this tenant's views (system admins: default all).")
@click.option("--name", default=None, help="Only this view (memory, sessions, blackboard, …).")
@json_flag
@connection
def status(api: Api, tenant: str | None, name: str | None, as_json: bool) -> None:
    """Each running view: generation, position, head, lag, and a rebuild under way if any."""
    response = api.call("GET", "/v1/projections", params={"tenant_id": tenant, "name": name})
    if as_json:
        click.echo(response.text)
        return
    views = response.json().get("projections", [])
    if not views:
        click.echo("no running views", err=True)
        return
    table = Table("view", "tenant", "env", "project", "generation", "position", "head", "lag", "rebuild")
    for view in views:
        rebuild = view.get("rebuild")
        note = None
        if rebuild:
            note = (
                f"{rebuild['state']} gen {rebuild['generation']} at {rebuild['position']}/{rebuild['head']}"
            )
        table.add_row(*map(cell, (view["name"], view["tenant_id"], view["env"], view["project_id"],
                                   view["generation"], view["position"], view["head"], view["lag"], note)))  # fmt: skip
    new_console().print(table)


@projections.command("rebuild")
@click.argument("name")
@click.option("--tenant", default=None, help="Only this tenant's partitions (tenant admins: their own).")
@click.option("--project", default=None, help="Only this project (needs --tenant, or a tenant token).")
@click.option("--env", default=None, help="Only this environment.")
@click.option(
    "--from",
    "from_",
    type=click.Choice(["snapshot", "start"]),
    default="snapshot",
    show_default=True,
    help="snapshot: from the partition's snapshot when one is valid (else position 0); start: position 0.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal]."
)
@connection
def rebuild(api: Api, name: str, tenant: str | None, project: str | None, env: str | None, from_: str,
            progress: bool | None) -> None:  # fmt: skip
    """Rebuild view NAME beside the serving one; swap it in once caught up.

    The new generation starts as a copy of the partition's snapshot (`spine projections snapshot`)
    and replays the events after it, or, with --from start or without a valid snapshot, replays
    the log from position 0. Reads keep being served by the current generation until the swap.
    Interrupted (the service stopped), the rebuild resumes from its own checkpoint when this
    command is run again.
    """
    path = f"/v1/projections/{name}/rebuild"
    answer = api.call("POST", path, params={"from": from_}, body=_partitions(tenant, project, env))
    started = answer.json()["projections"]
    if not started:
        click.echo(f"no partition runs the {name} view (yet): nothing to rebuild", err=True)
        return
    targets = {_key(view) for view in started}
    console = Console(stderr=True)
    show = console.is_terminal if progress is None else progress
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} ev/s"), TimeRemainingColumn())  # fmt: skip
    bars: dict[str, TaskID] = {}
    with Progress(*columns, console=console, disable=not show) as bar:
        while True:
            views = [v for v in _views(api, name, tenant) if _key(v) in targets]
            for view in views:
                progress_ = view.get("rebuild") or {}
                key, total = _key(view), max(progress_.get("head", 0), 1)
                if key not in bars:
                    bars[key] = bar.add_task(key, total=total, rate="-")
                bar.update(bars[key], completed=progress_.get("position", 0), total=total,
                           rate=f"{progress_.get('events_per_second', 0):,.0f}",
                           description=f"{key} {progress_.get('state', 'building')}")  # fmt: skip
            states = [(v.get("rebuild") or {}).get("state") for v in views]
            if all(s in ("swapped", "failed", "elsewhere") for s in states):
                break
            time.sleep(POLL_SECONDS)
    failed = [_key(v) for v in views if (v.get("rebuild") or {}).get("state") == "failed"]
    for view in views:
        rebuild_ = view.get("rebuild") or {}
        click.echo(f"{_key(view)}: {rebuild_.get('state')}, generation {view['generation']}, "
                   f"position {view['position']}")  # fmt: skip
    if failed:
        raise click.ClickException(f"rebuild failed for {', '.join(failed)}; run it again to resume")


@projections.command("snapshot")
@click.argument("name")
@click.option("--tenant", default=None, help="Only this tenant's partitions (tenant admins: their own).")
@click.option("--project", default=None, help="Only this project (needs --tenant, or a tenant token).")
@click.option("--env", default=None, help="Only this environment.")
@connection
def snapshot(api: Api, name: str, tenant: str | None, project: str | None, env: str | None) -> None:
    """Snapshot view NAME of each partition: later rebuilds start from it instead of position 0.

    Take one before a retention run to keep, through later rebuilds, what the removed events did.
    """
    path = f"/v1/projections/{name}/snapshots"
    taken = api.call("POST", path, params={"wait": "true"}, body=_partitions(tenant, project, env))
    snapshots = taken.json()["snapshots"]
    if not snapshots:
        click.echo(f"no partition runs the {name} view (yet): nothing to snapshot", err=True)
        return
    for shot in snapshots:
        where = f"{shot['name']} {shot['tenant_id']}/{shot['env']}/{shot['project_id']}"
        if shot["state"] == "taken":
            click.echo(f"{where}: taken at position {shot['position']}, {shot['documents']} documents")
        else:
            click.echo(f"{where}: {shot['state']}" + (f" ({shot['error']})" if shot.get("error") else ""))
    failed = [s["project_id"] for s in snapshots if s["state"] != "taken"]
    if failed:
        raise click.ClickException(f"{len(failed)} snapshot(s) not taken; run the command again")


def _partitions(tenant: str | None, project: str | None, env: str | None) -> dict[str, str]:
    return {
        key: value for key, value in (("tenant_id", tenant), ("project_id", project), ("env", env)) if value
    }


def _views(api: Api, name: str, tenant: str | None) -> list[dict[str, Any]]:
    answer = api.call("GET", "/v1/projections", params={"name": name, "tenant_id": tenant}).json()
    views: list[dict[str, Any]] = answer["projections"]
    return views


def _key(view: dict[str, Any]) -> str:
    return f"{view['name']} {view['tenant_id']}/{view['env']}/{view['project_id']}"

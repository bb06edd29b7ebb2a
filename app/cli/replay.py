"""`spine replay`: a partition's events as JSON lines, or (`--into URL`) its log moved to another backend.

Both read the partition from where the routing registry sends it (the system spine holds the
registry: `SPINE_SYSTEM_URL`, default the data dir's `spine.db`), so they work for any route.
The lines show personal fields as the API does (opened, or `[erased]`); a move copies the log as
stored, its personal fields sealed under keys that stay where they are.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import click
import msgspec
from rich.console import Console
from rich.table import Table

from app.backends import Backends
from app.cli import bars
from app.cli.deployment import opened, require_system_store
from app.personal_spine import PersonalSpine
from app.settings import Settings
from app.usecases.move import Progress as Done
from app.usecases.move import RangeDigest, copy_log, digests, fill_plan
from app.views import project_known
from domain.backend_url import Backend, parse_backend_url
from domain.cursor import check_cursor
from domain.errors import NotFound, SpineError
from domain.partition import Partition, normalize_env
from domain.ports import EventSpine

_DATA_DIR_HELP = "Where the embedded store lives [env SPINE_DATA_DIR; default ./spine-data]."
system_url_option = click.option(
    "--system-url",
    metavar="URL",
    default=None,
    help="Where the system spine (control plane, routes) lives: sqlite:///PATH, dynamodb://TABLE?region=…, "
    "firestore://PROJECT, cosmos://HOST:PORT/DATABASE?key=secret://… [env SPINE_SYSTEM_URL; "
    "default spine.db in the data dir].",
)


@click.command()
@click.option("--tenant", required=True, help="Tenant id of the partition.")
@click.option("--project", required=True, help="Project id of the partition.")
@click.option("--env", default="dev", show_default=True, help="Environment of the partition.")
@click.option(
    "--after", default=0, show_default=True, type=click.IntRange(min=0), help="Cursor: events after it."
)
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--stream", default=None, help="Only this stream.")
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@click.option(
    "--into",
    metavar="URL",
    default=None,
    help="Copy the whole log into this backend instead, verify it and print the route to switch: "
    "dynamodb://TABLE?region=…, firestore://PROJECT, cosmos://HOST:PORT/DATABASE?key=secret://…, "
    "sqlite:///PATH (relative: in the data dir).",
)
@click.option(
    "--range-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="With --into: positions per verified range (count + SHA-256).",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=_DATA_DIR_HELP
)
@system_url_option
@click.option("--progress/--no-progress", default=None, help=bars.PROGRESS_HELP)
def replay(
    tenant: str,
    project: str,
    env: str,
    after: int,
    limit: int | None,
    stream: str | None,
    types: tuple[str, ...],
    into: str | None,
    range_size: int,
    data_dir: Path | None,
    system_url: str | None,
    progress: bool | None,
) -> None:
    """Print a partition's events after a cursor as JSON lines on stdout, or move its log (--into).

    With --into, the copy keeps every event's position, stream version, id and time, so cursors
    and Last-Event-ID stay valid once the route is switched. It is resumable (run it again to copy
    what is new), and refuses a target that holds another log.
    """
    settings = Settings.from_env(data_dir=data_dir, system_url=system_url)
    try:
        settings.system  # noqa: B018  # a wrong URL is a usage error, said before anything opens
        partition = Partition(tenant_id=tenant, env=normalize_env(env), project_id=project)
        target = None if into is None else parse_backend_url(into)
    except (msgspec.ValidationError, SpineError, ValueError) as exc:
        raise click.BadParameter(getattr(exc, "message", str(exc))) from exc
    if target is not None and (after or limit or stream or types):
        raise click.BadParameter(
            "--into moves the whole log: --after, --limit, --stream and --type do not apply"
        )
    require_system_store(settings)
    show = bars.shown(progress)
    try:
        if target is None:
            anyio.run(_print, settings, partition, after, limit, stream, types, show)
        else:
            anyio.run(_move, settings, partition, target, range_size, show)
    except SpineError as exc:
        raise click.ClickException(f"{exc.error_code}: {exc.message}") from exc


@asynccontextmanager
async def _routed(
    settings: Settings,
    partition: Partition,
    *,
    personal: bool = False,
) -> AsyncIterator[tuple[Backends, EventSpine, Backend, bool]]:
    """The backends, the spine (and its backend) the registry routes `partition` to, and whether
    retention removed events of it (a copy then fills their positions: `app.usecases.move`); with
    `personal`, through `PersonalSpine` (personal fields opened)."""
    async with opened(settings) as deployment:
        tenant = deployment.state.tenant(partition.tenant_id)  # NotFound: said, and exit 1
        if not project_known(deployment.state, partition):
            raise NotFound("project", partition.project_id)  # not an empty log: a typo, most likely
        spine, source = await deployment.spine_of(partition, tenant.mode)
        if personal:
            spine = PersonalSpine(spine, deployment.keys)
        yield deployment.backends, spine, source, partition.key in deployment.state.marks


async def _print(
    settings: Settings,
    partition: Partition,
    after: int,
    limit: int | None,
    stream: str | None,
    types: tuple[str, ...],
    show: bool,
) -> None:
    out = sys.stdout.buffer
    async with _routed(settings, partition, personal=True) as (_, spine, _, _):
        head = await spine.head(partition)
        check_cursor(after, head)
        remaining = limit if limit is not None else max(head - after, 0)
        with bars.bars(show) as bar:
            update = bars.task(bar, "replay", max(head - after, 0))
            cursor = after
            while remaining > 0:
                page = await spine.read_encoded(
                    partition, after=cursor, limit=min(1000, remaining), stream=stream, types=types
                )
                out.write(b"".join(body + b"\n" for _, _, body in page.events))
                remaining -= len(page.events)
                update(page.next - after)
                if page.next >= page.head:
                    break
                cursor = page.next
    out.flush()


async def _move(
    settings: Settings, partition: Partition, target: Backend, range_size: int, show: bool
) -> None:
    console = Console(stderr=True)
    async with _routed(settings, partition) as (backends, source, source_backend, truncated):
        into = await backends.spine(target)
        if into is source:
            raise click.ClickException(f"the partition's log already lives in {target.url}")
        head = await source.head(partition)
        with bars.bars(show) as bar:
            gaps = await fill_plan(source, partition) if truncated else {}
            upto, copied = await copy_log(source, into, partition, bars.task(bar, "copy", head), gaps)
        console.print(f"copied {copied} events ({upto} in all) from {source_backend.url} into {target.url}")
        with bars.bars(show) as bar:
            update = bars.task(bar, "verify", 2 * upto)
            done = {"source": 0, "target": 0}

            def seen(side: str) -> Done:
                def advanced(at: int) -> None:
                    done[side] = at
                    update(sum(done.values()))

                return advanced

            theirs = await digests(source, partition, upto, range_size, seen("source"))
            ours = await digests(into, partition, upto, range_size, seen("target"))
    _report(console, theirs, ours)
    if theirs != ours:
        raise click.ClickException(
            "the copy differs from the source in the ranges marked DIFFERS: do not switch"
        )
    _print_switch(partition, target, upto)


def _report(console: Console, theirs: list[RangeDigest], ours: list[RangeDigest]) -> None:
    table = Table(
        "positions",
        "source count",
        "target count",
        "sha256 (source)",
        "",
        title="verification",
        title_justify="left",
    )
    for source, copy in zip(theirs, ours, strict=True):
        same = source == copy
        table.add_row(
            f"{source.first}-{source.last}", str(source.count), str(copy.count), source.sha256[:16],
            "equal" if same else "[red]DIFFERS[/red]",
        )  # fmt: skip
    console.print(table)


def _print_switch(partition: Partition, target: Backend, upto: int) -> None:
    """What to run next, on stdout (the copy's figures went to stderr)."""
    config = json.dumps(target.config, separators=(",", ":"))
    click.echo(
        f"verified: positions 1-{upto} are equal in both logs. To switch, with writes to the partition stopped"
    )
    click.echo("(or after running this again to copy what was appended meanwhile):")
    click.echo(
        f"  spine routes set --kind event_spine --tenant {partition.tenant_id} --env {partition.env} "
        f"--project {partition.project_id} --backend {target.backend_type} --config '{config}' "
        "--rationale 'moved with spine replay --into'"
    )

"""The `spine` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import anyio
import click
import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from spine.adapters.sqlite_spine import SQLiteSpine
from spine.app.cli_projections import projections
from spine.app.cli_routes import doctor, routes
from spine.app.settings import Settings
from spine.domain.cursor import check_cursor
from spine.domain.errors import SpineError
from spine.domain.partition import Partition, normalize_env

_data_dir = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded store lives [env SPINE_DATA_DIR; default ./spine-data].",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Spine: event-sourced durability for multi-tenant AI-agent platforms."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@_data_dir
@click.option(
    "--redis-url", default=None, help="Redis for cross-process notifications [env SPINE_REDIS_URL]."
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def serve(host: str, port: int, data_dir: Path | None, redis_url: str | None, log_level: str) -> None:
    """Run the HTTP service (embedded SQLite store by default)."""
    from spine.app.factory import create_app
    from spine.app.logs import configure_logging
    from spine.app.server import serve_app

    configure_logging(log_level)
    settings = Settings.from_env(data_dir=data_dir, redis_url=redis_url)
    logging.getLogger("spine").info(
        "serving", extra={"url": f"http://{host}:{port}", "data_dir": str(settings.data_dir.resolve())}
    )
    serve_app(create_app(settings), host=host, port=port)


@main.command()
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, help="The running Spine service.")
@click.option(
    "--key", default=None, help="The bootstrap key [env SPINE_BOOTSTRAP_KEY; lab: read from the data dir]."
)
@click.option(
    "--user-id", default="admin", show_default=True, help="The first system admin (on first bootstrap only)."
)
@_data_dir
def bootstrap(url: str, key: str | None, user_id: str, data_dir: Path | None) -> None:
    """Create t_system and its first admin (idempotent); print an admin token on stdout."""
    import httpx

    key = key or Settings.from_env().bootstrap_key
    if key is None:
        key_file = (data_dir or Settings.from_env().data_dir) / "secrets" / "bootstrap.key"
        if not key_file.exists():
            raise click.ClickException(
                "no bootstrap key: pass --key, set SPINE_BOOTSTRAP_KEY, or point --data-dir at a lab store"
            )
        key = key_file.read_text().strip()
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/auth/bootstrap",
            headers={"X-Bootstrap-Key": key},
            json={"user_id": user_id},
        )
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if response.status_code != 200:
        problem = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        raise click.ClickException(
            f"{response.status_code} {problem.get('error_code', '')}: {problem.get('message', response.text)}"
        )
    answer = response.json()
    click.echo(f"token for {answer['user_id']} of {answer['tenant_id']} (keep it secret):", err=True)
    click.echo(answer["token"])


@main.command()
@click.option("--tenant", required=True, help="Tenant id of the partition.")
@click.option("--project", required=True, help="Project id of the partition.")
@click.option("--env", default="dev", show_default=True, help="Environment of the partition.")
@click.option(
    "--after", default=0, show_default=True, type=click.IntRange(min=0), help="Cursor: events after it."
)
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--stream", default=None, help="Only this stream.")
@click.option("--type", "types", multiple=True, help="Only these event types (repeatable).")
@_data_dir
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal]."
)
def replay(
    tenant: str,
    project: str,
    env: str,
    after: int,
    limit: int | None,
    stream: str | None,
    types: tuple[str, ...],
    data_dir: Path | None,
    progress: bool | None,
) -> None:
    """Print a partition's events after a cursor as JSON lines on stdout."""
    settings = Settings.from_env(data_dir=data_dir)
    if not settings.spine_path.exists():
        raise click.ClickException(f"no spine at {settings.spine_path}")
    try:
        partition = Partition(tenant_id=tenant, env=normalize_env(env), project_id=project)
    except msgspec.ValidationError as exc:
        raise click.BadParameter(str(exc)) from exc
    show = sys.stderr.isatty() if progress is None else progress
    try:
        anyio.run(_replay, settings, partition, after, limit, stream, types, show)
    except SpineError as exc:
        raise click.ClickException(f"{exc.error_code}: {exc.message}") from exc


async def _replay(
    settings: Settings,
    partition: Partition,
    after: int,
    limit: int | None,
    stream: str | None,
    types: tuple[str, ...],
    show_progress: bool,
) -> None:
    out = sys.stdout.buffer
    columns = (
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} ev/s"),
        TimeRemainingColumn(),
    )
    async with SQLiteSpine(settings.spine_path) as spine:
        head = await spine.head(partition)
        check_cursor(after, head)
        remaining = limit if limit is not None else max(head - after, 0)
        with Progress(*columns, console=Console(stderr=True), disable=not show_progress) as bar:
            task = bar.add_task("replay", total=max(head - after, 0), rate="-")
            cursor = after
            while remaining > 0:
                page = await spine.read_encoded(
                    partition, after=cursor, limit=min(1000, remaining), stream=stream, types=types
                )
                out.write(b"".join(body + b"\n" for _, _, body in page.events))
                remaining -= len(page.events)
                bar.update(task, completed=page.next - after, rate=f"{bar.tasks[0].speed or 0:,.0f}")
                if page.next >= page.head:
                    break
                cursor = page.next
    out.flush()


main.add_command(routes)
main.add_command(doctor)
main.add_command(projections)

"""The `spine` command line."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import click

from app.cli.archive import export, import_
from app.cli.connection import request
from app.cli.projections import projections
from app.cli.replay import replay, system_url_option
from app.cli.retention import retention
from app.cli.routes import doctor, routes
from app.settings import Settings

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
@system_url_option
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes sharing the port and the data directory (with --redis-url, followers "
    "in one hear of appends made in another at once; without, within SPINE_POLL_SECONDS).",
)
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    redis_url: str | None,
    system_url: str | None,
    log_level: str,
    workers: int,
) -> None:
    """Run the HTTP service (embedded SQLite store by default)."""
    from app.http.factory import create_app
    from app.http.server import serve_app
    from app.http.workers import listening_sockets, serve_workers, spine_worker
    from app.logs import configure_logging
    from app.startup_checks import refusal

    configure_logging(log_level)
    settings = Settings.from_env(data_dir=data_dir, redis_url=redis_url, system_url=system_url)
    try:
        settings.system  # noqa: B018  # a wrong URL is a usage error, said before anything starts
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--system-url' / SPINE_SYSTEM_URL") from None
    problem = refusal(settings)
    if problem is not None:  # said once, before the port is bound or a worker started
        raise click.ClickException(problem)
    logging.getLogger("spine").info(
        "serving",
        extra={
            "url": f"http://{host}:{port}",
            "data_dir": str(settings.data_dir.resolve()),
            "workers": workers,
        },
    )
    if workers == 1:
        serve_app(create_app(settings), host=host, port=port)
    else:
        if settings.redis_url is None:
            logging.getLogger("spine").warning(
                "several workers without Redis: a follower hears of another worker's appends by polling",
                extra={"poll_seconds": settings.poll_seconds},
            )
        try:
            sockets = listening_sockets(host, port, workers)
        except OSError as exc:  # as uvicorn says it when one process cannot listen
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        serve_workers(functools.partial(spine_worker, settings, log_level, host, port), sockets)


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
    key = key or Settings.from_env().bootstrap_key
    if key is None:
        key_file = (data_dir or Settings.from_env().data_dir) / "secrets" / "bootstrap.key"
        if not key_file.exists():
            raise click.ClickException(
                "no bootstrap key: pass --key, set SPINE_BOOTSTRAP_KEY, or point --data-dir at a lab store"
            )
        key = key_file.read_text().strip()
    response = request(
        url.rstrip("/"),
        "POST",
        "/v1/auth/bootstrap",
        body={"user_id": user_id},
        headers={"X-Bootstrap-Key": key},
    )
    answer = response.json()
    click.echo(f"token for {answer['user_id']} of {answer['tenant_id']} (keep it secret):", err=True)
    click.echo(answer["token"])


main.add_command(replay)
main.add_command(routes)
main.add_command(doctor)
main.add_command(projections)
main.add_command(export)
main.add_command(import_)
main.add_command(retention)

"""`spine export` and `spine import`: a tenant's records, routes and logs, as an archive directory
(`domain.archive`), from one deployment into another.

An archive is a directory rather than one tar file: each file carries its own SHA-256 in the
manifest, so a copy can be checked (and re-sent) file by file, `rsync` moves only what changed,
and `sha256sum` or `zcat` read it without Spine. `tar` makes one file of it when one is wanted.

Exit codes: 0 done (an import with nothing left to do included), 1 refused or failed (one line on
stderr says why: nothing was written when it is a checksum or a conflict), 2 a usage error.
"""

from __future__ import annotations

from pathlib import Path

import click

from app.backends import secret_files
from app.cli import bars
from app.cli.deployment import (
    data_dir_option,
    offline_settings,
    opened,
    progress_option,
    require_system_store,
    routed_by,
    run_offline,
)
from app.cli.replay import system_url_option
from app.usecases.export import Skipped, export_tenant
from app.usecases.import_archive import Imported, import_archive
from domain.archive import Manifest
from domain.errors import SpineError
from domain.identifiers import check
from domain.partition import Partition, normalize_env
from domain.ports import EventSpine
from domain.routing import Registry

_UNITS = {"checksums": "B"}  # the import's checksums go by bytes; its other bars by events


@click.command("export")
@click.option("--tenant", required=True, help="The tenant to export.")
@click.option(
    "--project",
    "projects",
    multiple=True,
    help="Only this project (repeatable) [default: every project, and the tenant's audit trail].",
)
@click.option(
    "--env",
    "envs",
    multiple=True,
    help="Only this environment (repeatable) [default: the deployment's own env and every env a "
    "route names for the tenant or the platform].",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The archive's directory: it must not exist, or be empty.",
)
@data_dir_option
@system_url_option
@progress_option
def export(
    tenant: str,
    projects: tuple[str, ...],
    envs: tuple[str, ...],
    out: Path,
    data_dir: Path | None,
    system_url: str | None,
    progress: bool | None,
) -> None:
    """Write a tenant's control-plane records, routes and logs into an archive directory.

    The archive holds manifest.json (every file with its SHA-256 and size, every partition with
    its head), control_plane.jsonl.gz (the tenant, its projects, surfaces, apps with origins,
    members and rate limits), routes.jsonl.gz (the tenant's routes, redacted as the API shows
    them) and logs/ENV/PROJECT.jsonl.gz (each partition's events in position order: id, type,
    stream, version, position, data, meta, recorded_at). No token and no secret is in it.

    Exporting the same data again gives the same bytes. Exit codes: 0 done, 1 refused or
    failed (one line says why), 2 usage.
    """
    settings = offline_settings(data_dir, system_url)
    try:
        check("tenant_id", tenant)
        for project in projects:
            check("project_id", project)
        wanted_envs = [check("env", normalize_env(env)) for env in envs]
    except SpineError as exc:
        raise click.BadParameter(exc.message) from None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise click.BadParameter(f"{out} exists and is not an empty directory", param_hint="'--out'")
    require_system_store(settings)
    with bars.bars(bars.shown(progress)) as bar:

        async def run() -> tuple[Manifest, list[Skipped]]:
            async with opened(settings) as deployment:
                return await export_tenant(
                    state=deployment.state,
                    registry=deployment.registry,
                    spine_of=routed_by(deployment),
                    default_env=settings.default_env,
                    tenant_id=tenant,
                    projects=sorted(set(projects)) or None,
                    envs=wanted_envs or None,
                    out=out,
                    found=lambda logs: bars.task(bar, "export", sum(head for _, head in logs)),
                    keys=deployment.keys,
                )

        manifest, skipped = run_offline(run)
    for skip in skipped:
        click.echo(f"skipped {skip.partition.key}: {skip.reason}", err=True)
    events = sum(p.events for p in manifest.partitions)
    click.echo(
        f"exported {manifest.tenant_id}: {events} events in {len(manifest.partitions)} logs "
        f"(envs {', '.join(manifest.envs)}) into {out}"
    )


@click.command("import")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "--with-routes",
    is_flag=True,
    help="Also write the archive's routes (they name the source deployment's backends, which the "
    "target may not have) [default: the target's own routes place the tenant].",
)
@click.option(
    "--range-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Positions per verified range (count + SHA-256) when the logs are compared afterwards.",
)
@data_dir_option
@system_url_option
@progress_option
def import_(
    archive: Path,
    with_routes: bool,
    range_size: int,
    data_dir: Path | None,
    system_url: str | None,
    progress: bool | None,
) -> None:
    """Load a tenant archive (from `spine export`) into this deployment, and verify it.

    First every file is checked against the manifest's SHA-256, and the tenant's records and logs
    against what the target already holds: a changed file, or a record or an event the target
    holds otherwise, is refused before anything is written. Then the records are created through
    the rules the API uses, and each log is copied with the same positions, ids, stream versions
    and times, read back, and compared range by range with the archive. The target must be
    bootstrapped. Run it again after an interruption: it goes on where it stopped, and once it
    completed it changes nothing. Exit codes: 0 done, 1 refused or failed, 2 usage.
    """
    settings = offline_settings(data_dir, system_url)
    require_system_store(settings)
    with bars.bars(bars.shown(progress)) as bar:

        async def run() -> Imported:
            async with opened(settings) as deployment:

                async def spine_of(partition: Partition, mode: str, registry: Registry | None) -> EventSpine:
                    return (await deployment.spine_of(partition, mode, registry))[0]

                return await import_archive(
                    archive,
                    control=deployment.control,
                    spine_of=spine_of,
                    with_routes=with_routes,
                    secret_files=secret_files(settings),
                    inside_data_dir=lambda path: _inside(settings.data_dir, path),
                    range_size=range_size,
                    bar=lambda label, total: bars.task(bar, label, total, _UNITS.get(label, "ev")),
                    keys=deployment.keys,
                )

        imported = run_offline(run)
    copied = sum(imported.copied.values())
    events = sum(p.events for p in imported.manifest.partitions)
    click.echo(
        f"imported {imported.manifest.tenant_id}: {imported.records} records and {imported.routes} routes "
        f"created, {copied} events copied ({events} in {len(imported.manifest.partitions)} logs); "
        "every log verified equal to the archive"
    )


def _inside(data_dir: Path, path: str) -> bool:
    root = data_dir.resolve()
    return bool(path) and (root / path).resolve().is_relative_to(root)

"""`spine retention run`: one retention run over every partition with rules, now (what the
service's job does every `retention_interval_seconds`); `--dry-run` says what would go.

Output: one line per partition on stdout (scanned, planned or removed, per stream); a bar per
partition on stderr while it removes. Exit codes: 0 done, 1 failed (one line says why), 2 usage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

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
from app.usecases import retention as usecase
from domain.partition import Partition


@click.group("retention")
def retention() -> None:
    """Retention of old events (rules: PUT /v1/retention)."""


@retention.command("run")
@click.option("--tenant", default=None, help="Only this tenant's projects [default: every tenant].")
@click.option("--dry-run", is_flag=True, help="Plan and print what would be removed; remove nothing.")
@data_dir_option
@system_url_option
@progress_option
def run(
    tenant: str | None, dry_run: bool, data_dir: Path | None, system_url: str | None, progress: bool | None
) -> None:
    """Remove the events every project's retention rules expire, from every backend.

    Each stream's last event stays (its version lives on in it); a partition's readers are told
    how far events were removed (X-Spine-Truncated) before any is. Safe to run beside the service
    and to run again: a run that was stopped is finished by the next.
    """
    settings = offline_settings(data_dir, system_url)
    require_system_store(settings)
    with bars.bars(bars.shown(progress)) as bar:

        async def main() -> list[usecase.Outcome]:
            async with opened(settings) as deployment:
                state = deployment.state
                if tenant is not None:
                    state.tenant(tenant)

                def bar_of(partition: Partition, planned: int) -> bars.Update:
                    return bars.task(bar, f"retention {partition.key}", planned)

                return await usecase.run(
                    state,
                    deployment.registry,
                    settings.default_env,
                    routed_by(deployment),
                    deployment.control,
                    datetime.now(UTC),
                    dry_run=dry_run,
                    bars=bar_of,
                    only_tenant=tenant,
                )

        outcomes = run_offline(main)
    verb = "would remove" if dry_run else "removed"
    for outcome in outcomes:
        key = outcome.partition.key
        if outcome.skipped is not None:
            click.echo(f"{key}: skipped ({outcome.skipped})")
            continue
        count = outcome.planned if dry_run else outcome.removed
        streams = ", ".join(f"{stream} {n}" for stream, n in sorted(outcome.by_stream.items()))
        click.echo(f"{key}: scanned {outcome.scanned}, {verb} {count}" + (f" ({streams})" if streams else ""))
    if not outcomes:
        click.echo("no project has retention rules")

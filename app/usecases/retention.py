"""A retention run: plan each partition's removals from its project's rules, keep what views
would lose, mark the partition, then remove (`domain.retention` says what is kept and why).

The order makes a crash at any point harmless: the budget summaries are written first (a summary
with nothing removed yet only repeats totals), the mark next (a reader told "truncated" before
anything is gone is told early, never late), the removal last and idempotent, so the next run
finishes what a killed one began.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from app.usecases.control_plane import ControlPlaneService, system_meta
from app.usecases.unit_of_work import retrying
from domain.append import AppendRequest
from domain.budget import TotalsKeeper
from domain.control_plane import ControlPlane, decide_retention_applied
from domain.errors import MissingRoute
from domain.events import NO_STREAM, EventMeta
from domain.partition import Partition
from domain.ports import EventSpine
from domain.retention import Plan, Planner, RetentionApplied, RetentionSet
from domain.routing import Registry, routed_envs

PAGE: Final = 1000
REMOVE_BATCH: Final = 1000
ACTOR: Final = "spine:retention"  # who the summaries a run writes are by
SpineOf = Callable[[Partition], Awaitable[EventSpine]]
Progress = Callable[[int], None]  # how many events were removed so far, in this partition
Bars = Callable[[Partition, int], Progress]  # a partition's progress, given how many it removes


@dataclass(frozen=True)
class Outcome:
    """One partition's run: what it read, planned and removed (a dry run removes nothing)."""

    partition: Partition
    scanned: int
    planned: int
    removed: int
    by_stream: dict[str, int]
    skipped: str | None = None  # why it was not run (no route)


def partitions(
    state: ControlPlane, registry: Registry, default_env: str
) -> Iterator[tuple[Partition, RetentionSet]]:
    """Every partition with retention rules: each project's, in its tenant's envs (the
    deployment's own and those its routes name)."""
    for (tenant_id, project_id), rules in sorted(state.retention.items()):
        if not rules.rules:
            continue
        for env in sorted(routed_envs(registry, tenant_id) | {default_env}):
            yield Partition(tenant_id=tenant_id, env=env, project_id=project_id), rules


async def plan(spine: EventSpine, partition: Partition, rules: RetentionSet, now: datetime) -> Plan:
    """Read the partition once, up to its head as it was when the read began."""
    planner = Planner(rules.rules, now)
    cursor, head = 0, await spine.head(partition)
    while cursor < head:
        page = await spine.read(partition, after=cursor, limit=PAGE)
        for event in page.events:
            if event.position > head:
                break
            planner.see(event)
        if not page.events or page.next >= head:
            break
        cursor = page.next
    return planner.plan()


async def run_partition(
    spine: EventSpine,
    control: ControlPlaneService,
    partition: Partition,
    rules: RetentionSet,
    now: datetime,
    *,
    dry_run: bool = False,
    bars: Bars | None = None,
) -> Outcome:
    planned = await plan(spine, partition, rules, now)
    by_stream = {stream: len(positions) for stream, positions in planned.removals.items()}
    outcome = Outcome(partition, planned.scanned, planned.count, 0, by_stream)
    if dry_run or not planned.count:
        return outcome
    for stream, positions in planned.removals.items():
        if stream.startswith("budget:"):
            await keep_budget_totals(spine, partition, stream, set(positions))
    positions = planned.positions
    applied = RetentionApplied(
        tenant_id=partition.tenant_id,
        env=partition.env,
        project_id=partition.project_id,
        through=positions[-1],
        removed=len(positions),
        at=now,
    )
    await control.execute(lambda state: decide_retention_applied(state, applied), system_meta(partition.env))
    progress = None if bars is None else bars(partition, len(positions))
    removed = 0
    for start in range(0, len(positions), REMOVE_BATCH):
        removed += await spine.remove(partition, positions[start : start + REMOVE_BATCH])
        if progress is not None:
            progress(removed)
    return Outcome(partition, planned.scanned, planned.count, removed, by_stream)


async def keep_budget_totals(spine: EventSpine, partition: Partition, stream: str, removed: set[int]) -> None:
    """Append the unit's `budget.totals_kept` (`domain.budget.TotalsKeeper`), expecting the
    version it was decided on: a usage landing meanwhile makes it read and decide again."""
    unit = stream.removeprefix("budget:")
    meta = EventMeta(
        tenant_id=partition.tenant_id, env=partition.env, project_id=partition.project_id, user_id=ACTOR
    )

    async def attempt() -> None:
        keeper, version = TotalsKeeper(unit, removed), 0
        while True:
            events, current = await spine.read_stream(partition, stream, after_version=version, limit=PAGE)
            for event in events:
                keeper.see(event)
                version = event.version
            if not events or version >= current:
                break
        kept = keeper.decide()
        if kept is not None:
            request = AppendRequest(
                stream=stream, events=[kept], expected_version=version or NO_STREAM, meta=meta
            )
            await spine.append(partition, request)

    await retrying(attempt, attempts=10)


async def run(
    state: ControlPlane,
    registry: Registry,
    default_env: str,
    spine_of: SpineOf,
    control: ControlPlaneService,
    now: datetime,
    *,
    dry_run: bool = False,
    bars: Bars | None = None,
    only_tenant: str | None = None,
) -> list[Outcome]:
    """Run every partition with rules (of `only_tenant`); one without a route is reported, not an error."""
    outcomes: list[Outcome] = []
    for partition, rules in partitions(state, registry, default_env):
        if only_tenant is not None and partition.tenant_id != only_tenant:
            continue
        try:
            spine = await spine_of(partition)
        except MissingRoute as exc:
            outcomes.append(Outcome(partition, 0, 0, 0, {}, skipped=exc.message))
            continue
        outcomes.append(
            await run_partition(spine, control, partition, rules, now, dry_run=dry_run, bars=bars)
        )
    return outcomes

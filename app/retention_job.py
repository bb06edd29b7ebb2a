"""The retention job of `spine serve`: a run (`app.usecases.retention`) every
`retention_interval_seconds`, the first one at start-up; 0 turns it off.

Every instance runs it: runs are idempotent (a second one finds nothing left to remove), so no
lease is needed, only the read of each partition it repeats. A run that fails (a backend down) is
logged and tried again at the next interval; it never stops the service.
"""

from __future__ import annotations

import logging

import anyio

from app.http.services import Services
from app.usecases import retention
from domain.errors import SpineError
from domain.partition import Partition
from domain.ports import EventSpine

log = logging.getLogger(f"spine.{__name__}")


async def run_once(services: Services) -> list[retention.Outcome]:
    state = services.control.state

    async def spine_of(partition: Partition) -> EventSpine:
        # as stored: a run reads every event and needs none of their personal fields opened
        return await services.spines.stored_for_partition(partition, state.tenant(partition.tenant_id).mode)

    outcomes = await retention.run(
        state,
        services.control.projector.registry,
        services.settings.default_env,
        spine_of,
        services.control,
        services.clock(),
    )
    for outcome in outcomes:
        if outcome.removed or outcome.skipped:
            log.info(
                "retention run",
                extra={
                    "partition": outcome.partition.key,
                    "scanned": outcome.scanned,
                    "removed": outcome.removed,
                    "skipped": outcome.skipped,
                },
            )
    return outcomes


async def run_forever(services: Services, interval_seconds: float) -> None:
    while True:
        try:
            await run_once(services)
        except SpineError as exc:
            log.warning("retention run failed", extra={"error_code": exc.error_code, "detail": str(exc)})
        await anyio.sleep(interval_seconds)

"""What every read of a projected view shares: the read-your-writes wait and the lab warning."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

from spine.app.services import Call
from spine.domain.cursor import check_cursor, parse_cursor
from spine.domain.errors import ProjectionLagging
from spine.projections.runtime import Projection, Runner

MinPosition = Annotated[
    str | None, HeaderParameter(name="X-Spine-Min-Position", description="wait until the view reflects it")
]


async def caught_up(
    call: Call, projection: Projection, kind: str, min_position: str | None
) -> tuple[Runner, str | None]:
    """The running view of the request's partition, once it reflects `min_position` (bounded)."""
    wanted = parse_cursor(min_position, name="X-Spine-Min-Position")
    runner, warning = await call.services.views.runner(projection, kind, call.ctx)
    if wanted > runner.position:
        spine, _ = await call.services.spines.for_context(call.ctx)
        check_cursor(wanted, await spine.head(call.ctx.partition))  # a position never written: 400
        await reflecting(runner, wanted, call.services.settings.read_wait_seconds)
    return runner, warning


async def reflecting(runner: Runner, position: int, timeout: float) -> None:
    """Return once the runner's view reflects `position`; `ProjectionLagging` after `timeout`.

    A runner that has just started announces its stored checkpoint as soon as it has loaded it,
    so a view already built is never waited for.
    """
    if not await runner.wait_for(position, timeout):
        raise ProjectionLagging(runner.projection.name, position, runner.position)


def warning_header(code: str | None) -> dict[str, str]:
    """Lab answers that fell back to the embedded store say so (loud, never silent)."""
    return {"X-Spine-Warning": code} if code else {}

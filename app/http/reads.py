"""What every read of a projected view shares: the read-your-writes wait, and the depth check of
what it answers.

A view's documents were stored by whatever version projected them, and one written before JSON
depth limits may nest too deep to encode (see `domain.json_depth`). Every read passes what
it answers through `served` (one document: 422 `view.unreadable`) or `served_each` (a list: the
others as usual, that one with its deep fields null and a `problem`), so one such document never
makes a read answer 500. (The lab warning of a read is set by one hook: `app.http.middleware`.)
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from litestar.params import HeaderParameter

from app.http.services import Call
from domain.cursor import check_cursor, parse_cursor
from domain.errors import ProjectionLagging, Unreadable
from domain.json_depth import SERVED_DEPTH, value_exceeds
from projections.catalog import View
from projections.runtime import Runner

Item = TypeVar("Item", bound=msgspec.Struct)


class ItemProblem(msgspec.Struct, frozen=True, kw_only=True):
    """Why an item of a list comes with `fields` null: its stored document nests too deep to send."""

    error_code: str
    detail: str
    fields: list[str]


Problem = ItemProblem | msgspec.UnsetType
"""The `problem` field of a list's items: `problem: Problem = msgspec.UNSET`, absent when unset."""

MinPosition = Annotated[
    str | None, HeaderParameter(name="X-Spine-Min-Position", description="wait until the view reflects it")
]


async def caught_up(call: Call, view: View, min_position: str | None) -> Runner:
    """The running `view` of the request's partition, once it reflects `min_position` (bounded)."""
    wanted = parse_cursor(min_position, name="X-Spine-Min-Position")
    runner = await call.view(view)
    if wanted > runner.position:
        spine = await call.services.spines.for_context(call.ctx)  # the head only: not what is read
        check_cursor(wanted, await spine.head(call.ctx.partition))  # a position never written: 400
        await reflecting(runner, wanted, call.services.settings.read_wait_seconds)
    return runner


async def reflecting(runner: Runner, position: int, timeout: float) -> None:
    """Return once the runner's view reflects `position`; `ProjectionLagging` after `timeout`.

    A runner that has just started announces its stored checkpoint as soon as it has loaded it,
    so a view already built is never waited for.
    """
    if not await runner.wait_for(position, timeout):
        raise ProjectionLagging(runner.projection.name, position, runner.position)


def served(item: Item) -> Item:
    """`item`, unless it nests deeper than Spine serves: `Unreadable` (422 `view.unreadable`)."""
    if value_exceeds(item, SERVED_DEPTH):
        raise Unreadable("view", SERVED_DEPTH)
    return item


def served_each(items: list[Item]) -> list[Item]:
    """`items`, each one that nests deeper than Spine serves with its deep fields null and a
    `problem` (the item's type has `problem: Problem = UNSET`). One encode of the whole list, and
    a count of its brackets, clears the usual list at once."""
    if not value_exceeds(items, SERVED_DEPTH + 1):
        return items
    return [_marked(item) if value_exceeds(item, SERVED_DEPTH) else item for item in items]


def _marked(item: Item) -> Item:
    fields = {name: getattr(item, name) for name in item.__struct_fields__ if name != "problem"}
    deep = [name for name, value in fields.items() if value_exceeds(value, SERVED_DEPTH - 1)]
    error = Unreadable("view", SERVED_DEPTH)
    problem = ItemProblem(error_code=error.error_code, detail=error.message, fields=deep)
    return msgspec.structs.replace(item, problem=problem, **dict.fromkeys(deep))

"""`/v1/strategy-locks/{id}/snapshots`: durable snapshots of a lock, the latest and the history."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, Parameter, PathParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, Problem, caught_up, served, served_each
from app.http.services import CallDep
from app.usecases.unit_of_work import append_expecting, expected_at
from domain.cursor import parse_cursor
from domain.errors import StrategyLockConflict, StrategyLockNotFound
from domain.events import ExpectedVersion
from domain.strategy_locks import (
    LATEST,
    LOCK_PATTERN,
    SNAPSHOTS,
    snapshot_event,
    snapshot_key,
    snapshots_prefix,
    stream_of,
)
from projections.catalog import VIEWS

VIEW = VIEWS["strategy_locks"]
MAX_PAGE = 1000
LockId = Annotated[str, PathParameter(description="the strategy lock", pattern=LOCK_PATTERN)]


class SnapshotBody(msgspec.Struct, frozen=True, kw_only=True):
    state: Any
    expected_version: ExpectedVersion | None = None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    state: Any
    taken_at: str
    taken_by: str | None
    position: int
    problem: Problem = msgspec.UNSET  # in a history: why `state` is null (`app.http.reads.served_each`)


class History(msgspec.Struct, frozen=True, kw_only=True):
    """Snapshots oldest first; `next` is the `after` of the next page, null on the last."""

    id: str
    snapshots: list[Snapshot]
    next: int | None


class StrategyLocksController(Controller):
    path = "/v1/strategy-locks/{lock_id:str}/snapshots"
    tags = ["strategy locks"]

    @post("/", status_code=201, summary="Take a snapshot; expected_version or If-Match: compare-and-set")
    async def take(
        self, lock_id: LockId, data: JSONBody[SnapshotBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(data.expected_version, if_match)
        ctx = call.ctx
        await call.view(VIEW)  # 503 before appending
        spine = await call.spine()
        stream = stream_of(lock_id)
        expected = await expected_at(wanted, spine, ctx.partition, stream)
        result = await append_expecting(
            spine, ctx, stream, [snapshot_event(lock_id, data.state)], expected, conflict=StrategyLockConflict
        )
        headers = {"X-Spine-Position": str(result.last_position), "ETag": f'"{result.stream_version}"'}
        body = {"id": lock_id, "version": result.stream_version, "position": result.last_position}
        return Response(body, status_code=201, headers=headers)

    @get("/latest", summary="The latest snapshot (ETag = its version); 404 before the first")
    async def latest(
        self, lock_id: LockId, call: CallDep, min_position: MinPosition = None
    ) -> Response[Snapshot]:
        runner = await caught_up(call, VIEW, min_position)
        doc = await runner.get(LATEST, lock_id)
        if doc is None:
            raise StrategyLockNotFound(lock_id)
        snapshot = served(msgspec.convert(doc.data, Snapshot))
        return Response(snapshot, headers={"ETag": f'"{snapshot.version}"'})

    @get("/", summary="Every snapshot of the lock in order, by cursor (a version); 404 before the first")
    async def history(
        self,
        lock_id: LockId,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="a version: the snapshots after it")] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")] = 100,
        min_position: MinPosition = None,
    ) -> Response[History]:
        start = parse_cursor(after)
        runner = await caught_up(call, VIEW, min_position)
        if await runner.get(LATEST, lock_id) is None:
            raise StrategyLockNotFound(lock_id)
        docs = await runner.list(
            SNAPSHOTS, prefix=snapshots_prefix(lock_id), after=snapshot_key(lock_id, start), limit=limit + 1
        )
        page = served_each([msgspec.convert(doc.data, Snapshot) for doc in docs[:limit]])
        cursor = page[-1].version if len(docs) > limit else None
        return Response(History(id=lock_id, snapshots=page, next=cursor))

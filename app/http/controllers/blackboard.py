"""`/v1/runs/{run}/blackboard`: shared, versioned entries of a run (ETag = version)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, put
from litestar.params import JSONBody, PathParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, Problem, caught_up, served, served_each
from app.http.services import Call, CallDep
from app.usecases.unit_of_work import append_expecting, expected_at
from domain.blackboard import (
    COLLECTION,
    NAME_PATTERN,
    entry_key,
    run_prefix,
    stream_of,
    written_event,
)
from domain.errors import BlackboardConflict, BlackboardNotFound
from domain.events import ExpectedVersion
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["blackboard"]
RunId = Annotated[str, PathParameter(description="the run", pattern=NAME_PATTERN)]
EntryKey = Annotated[str, PathParameter(description="the entry key", pattern=NAME_PATTERN)]
MAX_ENTRIES = 10_000


class EntryBody(msgspec.Struct, frozen=True, kw_only=True):
    value: Any
    expected_version: ExpectedVersion | None = None


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: Any
    version: int
    written_by: str | None
    position: int
    updated_at: str
    problem: Problem = msgspec.UNSET  # in a board: why `value` is null (`app.http.reads.served_each`)


class Board(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    entries: list[Entry]


class BlackboardController(Controller):
    path = "/v1/runs/{run_id:str}/blackboard"
    tags = ["blackboard"]

    @put("/{key:str}", summary="Write an entry; expected_version or If-Match makes it a compare-and-set")
    async def write(
        self, run_id: RunId, key: EntryKey, data: JSONBody[EntryBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(data.expected_version, if_match)
        ctx = call.ctx
        await call.view(VIEW)  # no view route: 503, nothing appended
        spine = await call.spine()
        stream = stream_of(run_id, key)
        event = written_event(run_id, key, data.value, ctx.user_id)
        expected = await expected_at(wanted, spine, ctx.partition, stream)
        result = await append_expecting(spine, ctx, stream, [event], expected, conflict=BlackboardConflict)
        headers = {
            "X-Spine-Position": str(result.last_position),
            "ETag": f'"{result.stream_version}"',
        }
        return Response(
            {"key": key, "version": result.stream_version, "position": result.last_position}, headers=headers
        )

    @get("/{key:str}", summary="One entry, with its version as ETag; 404 when absent")
    async def read_entry(
        self, run_id: RunId, key: EntryKey, call: CallDep, min_position: MinPosition = None
    ) -> Response[Entry]:
        runner = await _view(call, min_position)
        doc = await runner.get(COLLECTION, entry_key(run_id, key))
        if doc is None:
            raise BlackboardNotFound(run_id, key)
        entry = served(msgspec.convert(doc.data, Entry))
        return Response(entry, headers={"ETag": f'"{entry.version}"'})

    @get("/", summary="Every entry of the run, by key")
    async def read_board(
        self, run_id: RunId, call: CallDep, min_position: MinPosition = None
    ) -> Response[Board]:
        runner = await _view(call, min_position)
        docs = await runner.list(COLLECTION, prefix=run_prefix(run_id), limit=MAX_ENTRIES)
        board = Board(run_id=run_id, entries=served_each([msgspec.convert(doc.data, Entry) for doc in docs]))
        return Response(board)


async def _view(call: Call, min_position: str | None) -> Runner:
    return await caught_up(call, VIEW, min_position)

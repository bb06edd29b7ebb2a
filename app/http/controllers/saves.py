"""`/v1/saves/{kind}`: flows, graphs and overlays of the project, versioned, history kept (ETag = version)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.params import JSONBody, Parameter, PathParameter, QueryParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, caught_up, served
from app.http.services import Call, CallDep
from app.usecases import saves
from domain.cursor import parse_cursor
from domain.errors import (
    InvalidCursor,
    InvalidRequest,
    SaveNotFound,
    SaveVersionNotFound,
    UnknownSaveKind,
)
from domain.events import AppendResult, ExpectedVersion
from domain.ids import new_event_id
from domain.ports import EventSpine
from domain.saves import (
    ID_PATTERN,
    KINDS,
    LATEST,
    LIVE,
    VERSIONS,
    Change,
    SaveId,
    SaveName,
    kind_prefix,
    latest_key,
    version_key,
    versions_prefix,
)
from domain.views import ViewDoc
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["saves"]
MAX_PAGE = 1000
Kind = Annotated[str, PathParameter(description="flows, graphs or overlays")]
Id = Annotated[str, PathParameter(description="the save's id", pattern=ID_PATTERN)]
VersionNumber = Annotated[str, PathParameter(description="a version of the save", pattern=r"^[0-9]{1,18}$")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
Expected = Annotated[
    int | None, QueryParameter(name="expected_version", ge=0, description="the version you read")
]
_ID = re.compile(ID_PATTERN)


class NewSave(msgspec.Struct, frozen=True, kw_only=True):
    name: SaveName
    body: Any
    id: SaveId | None = None


class SaveChange(msgspec.Struct, frozen=True, kw_only=True):
    name: SaveName
    body: Any
    id: SaveId | None = None  # when sent, the path's
    expected_version: ExpectedVersion | None = None


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str
    name: str
    version: int
    updated_at: str
    updated_by: str | None
    position: int


class Save(Summary, frozen=True, kw_only=True):
    body: Any


class VersionSummary(Summary, frozen=True, kw_only=True):
    change: Change
    deleted: bool


class Version(VersionSummary, frozen=True, kw_only=True):
    body: Any


class Saves(msgspec.Struct, frozen=True, kw_only=True):
    """Live saves of a kind by id; `next` is the `after` of the next page, null on the last."""

    kind: str
    saves: list[Summary]
    next: str | None


class Versions(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    id: str
    versions: list[VersionSummary]
    next: int | None


class SavesController(Controller):
    path = "/v1/saves/{kind:str}"
    tags = ["saves"]

    @post("/", status_code=201, summary="Create a save (version 1); 409 when the id exists")
    async def create(self, kind: Kind, data: JSONBody[NewSave], call: CallDep) -> Response[dict[str, Any]]:
        spine = await _writer(call, kind)
        save_id = data.id or new_event_id()
        result = await saves.create(spine, call.ctx, kind, save_id, data.name, data.body)
        return _written(kind, save_id, result, status=201)

    @put("/{save_id:str}", summary="A new version; expected_version or If-Match makes it a compare-and-set")
    async def update(
        self, kind: Kind, save_id: Id, data: JSONBody[SaveChange], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        if data.id is not None and data.id != save_id:
            raise InvalidRequest("the body's id is not the path's")
        wanted = precondition(data.expected_version, if_match)
        spine = await _writer(call, kind)
        result = await saves.update(spine, call.ctx, kind, save_id, data.name, data.body, wanted)
        return _written(kind, save_id, result)

    @delete("/{save_id:str}", status_code=200, summary="Delete: a tombstone version; the history stays")
    async def delete(
        self,
        kind: Kind,
        save_id: Id,
        call: CallDep,
        if_match: IfMatch = None,
        expected_version: Expected = None,
    ) -> Response[dict[str, Any]]:
        wanted = precondition(expected_version, if_match)
        spine = await _writer(call, kind)
        result = await saves.delete(spine, call.ctx, kind, save_id, wanted)
        return _written(kind, save_id, result, deleted=True)

    @get("/{save_id:str}", summary="The latest version (ETag); 404 when absent or deleted")
    async def read(
        self, kind: Kind, save_id: Id, call: CallDep, min_position: MinPosition = None
    ) -> Response[Save]:
        _, doc = await _latest(call, kind, save_id, min_position)
        if doc.data["deleted"]:
            raise SaveNotFound(kind, save_id, deleted=True, version=doc.data["version"])
        save = served(msgspec.convert(doc.data, Save))
        return Response(save, headers={"ETag": f'"{save.version}"'})

    @get("/", summary="Live saves of the kind, by id, without their bodies")
    async def list_saves(
        self,
        kind: Kind,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Saves]:
        prefix = kind_prefix(_kind(kind))
        if after is not None and not _ID.match(after):
            raise InvalidCursor(f"after must be a save id, got {after[:40]!r}")
        runner = await caught_up(call, VIEW, min_position)
        docs = await runner.list(LIVE, prefix=prefix, after=prefix + (after or ""), limit=limit + 1)
        page = [msgspec.convert(doc.data, Summary) for doc in docs[:limit]]
        cursor = page[-1].id if len(docs) > limit else None
        return Response(Saves(kind=kind, saves=page, next=cursor))

    @get("/{save_id:str}/versions", summary="Every version in order, tombstones included, by cursor")
    async def list_versions(
        self,
        kind: Kind,
        save_id: Id,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="a version: the versions after it")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Versions]:
        start = parse_cursor(after)
        runner, _ = await _latest(call, kind, save_id, min_position)
        docs = await runner.list(
            VERSIONS,
            prefix=versions_prefix(kind, save_id),
            after=version_key(kind, save_id, start),
            limit=limit + 1,
        )
        page = [msgspec.convert(doc.data, VersionSummary) for doc in docs[:limit]]
        cursor = page[-1].version if len(docs) > limit else None
        answer = Versions(kind=kind, id=save_id, versions=page, next=cursor)
        return Response(answer)

    @get("/{save_id:str}/versions/{version:str}", summary="One version, tombstones included (ETag)")
    async def read_version(
        self, kind: Kind, save_id: Id, version: VersionNumber, call: CallDep, min_position: MinPosition = None
    ) -> Response[Version]:
        runner, latest = await _latest(call, kind, save_id, min_position)
        number = int(version)  # a path segment: `{version:int}` would answer 404 before the identity guard
        doc = await runner.get(VERSIONS, version_key(kind, save_id, number)) if number > 0 else None
        if doc is None:
            raise SaveVersionNotFound(kind, save_id, number, latest.data["version"])
        found = served(msgspec.convert(doc.data, Version))
        return Response(found, headers={"ETag": f'"{found.version}"'})


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnknownSaveKind(kind, list(KINDS))
    return kind


async def _writer(call: Call, kind: str) -> EventSpine:
    """The spine to decide on, once the view that will show the decision is known to be routed."""
    _kind(kind)
    await call.view(VIEW)  # 503 before appending
    return await call.spine()


async def _latest(call: Call, kind: str, save_id: str, min_position: str | None) -> tuple[Runner, ViewDoc]:
    """The view and the save's latest document (a tombstone, if deleted); `SaveNotFound` when never created."""
    _kind(kind)
    runner = await caught_up(call, VIEW, min_position)
    doc = await runner.get(LATEST, latest_key(kind, save_id))
    if doc is None:
        raise SaveNotFound(kind, save_id)
    return runner, doc


def _written(
    kind: str,
    save_id: str,
    result: AppendResult,
    *,
    status: int = 200,
    deleted: bool = False,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {"kind": kind, "id": save_id, "version": result.stream_version,
                            "position": result.last_position}  # fmt: skip
    if deleted:
        body["deleted"] = True
    headers = {"X-Spine-Position": str(result.last_position), "ETag": f'"{result.stream_version}"'}
    return Response(body, status_code=status, headers=headers)

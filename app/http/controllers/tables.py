"""`/v1/tables`: the generic tabular store: JSON rows by key, versioned, history kept (ETag = version).

Row keys may hold `/` (`agents/planner`), so a row's path is the rest of the URL after `rows/`.
The row's history is addressed below it (`…/rows/{key}/versions[/{n}]`): one GET route tells the
three apart, which is why no segment of a key may be `versions`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote

import msgspec
from litestar import Controller, Request, Response, delete, get, put
from litestar.params import JSONBody, Parameter, PathParameter, QueryParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, Problem, caught_up, served, served_each
from app.http.services import Call, CallDep
from app.usecases import tables
from domain.cursor import parse_cursor
from domain.errors import (
    InvalidCursor,
    InvalidRequest,
    TableNotFound,
    TableRowNotFound,
    TableRowVersionNotFound,
)
from domain.events import AppendResult, ExpectedVersion
from domain.identifiers import ROW_KEY_PATTERN, ROW_PREFIX_PATTERN, TABLE_PATTERN, check, matches
from domain.ports import EventSpine
from domain.tables import (
    DEFINITIONS,
    LATEST,
    LIVE,
    VERSIONS,
    Change,
    Description,
    row_key,
    rows_prefix,
    version_key,
    versions_prefix,
)
from domain.views import ViewDoc
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["tables"]
MAX_PAGE = 1000
Table = Annotated[str, PathParameter(description="the table: agents, config.v2", pattern=TABLE_PATTERN)]
KeyPath = Annotated[
    str,
    PathParameter(
        description="the row key, slashes and all: agents/planner, config.main, a:b@1 (no segment may be"
        " `versions`); followed by /versions for the row's history, /versions/{n} for one version"
    ),
]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
Expected = Annotated[
    int | None, QueryParameter(name="expected_version", ge=0, description="the version you read")
]
_ADDRESS: Final = re.compile(r"^/?(?P<key>.+?)(?P<history>/versions(?:/(?P<version>[^/]*))?)?$", re.DOTALL)
_VERSION: Final = re.compile(r"^[0-9]{1,18}$")


class TableDefinitionBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table's whole definition (every write replaces it). Unknown fields are refused, so a typo
    never silently drops a schema; identity fields may repeat the request's identity (the guard
    refuses any that disagree) and are never stored."""

    schema: dict[str, Any] | bool | None = None  # the JSON Schema of the rows' values; null: any JSON
    description: Description | None = None
    expected_version: ExpectedVersion | None = None
    tenant_id: str | None = None
    env: str | None = None
    mode: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None


class RowBody(msgspec.Struct, frozen=True, kw_only=True):
    value: Any
    expected_version: ExpectedVersion | None = None


class TableDefinition(msgspec.Struct, frozen=True, kw_only=True):
    table: str
    schema: Any
    description: str | None
    version: int
    position: int
    updated_at: str
    updated_by: str | None


class TableSummary(msgspec.Struct, frozen=True, kw_only=True):
    table: str
    description: str | None
    version: int
    updated_at: str
    updated_by: str | None


class Tables(msgspec.Struct, frozen=True, kw_only=True):
    """Defined tables by name; `next` is the `after` of the next page, null on the last."""

    tables: list[TableSummary]
    next: str | None


class RowVersionSummary(msgspec.Struct, frozen=True, kw_only=True):
    table: str
    key: str
    version: int
    change: Change
    deleted: bool
    position: int
    updated_at: str
    updated_by: str | None


class Row(RowVersionSummary, frozen=True, kw_only=True):
    """A version of a row: the latest (GET …/rows/{key}), or any (…/versions/{n}, a tombstone's
    value is null)."""

    value: Any


class ListedRow(Row, frozen=True, kw_only=True):
    problem: Problem = msgspec.UNSET


class Rows(msgspec.Struct, frozen=True, kw_only=True):
    """Live rows of a table by key; `next` is the `after` of the next page, null on the last."""

    table: str
    rows: list[ListedRow]
    next: str | None


class RowHistory(msgspec.Struct, frozen=True, kw_only=True):
    """Every version of a row in order, tombstones included; `next` is the `after` of the next page."""

    table: str
    key: str
    versions: list[RowVersionSummary]
    next: int | None


class TablesController(Controller):
    path = "/v1/tables"
    tags = ["tables"]

    @get("/", summary="Defined tables, by name, by cursor (tables holding rows only are not listed)")
    async def list_tables(
        self,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Tables]:
        if after is not None and not matches(after, TABLE_PATTERN):
            raise InvalidCursor(f"after must be a table name, got {after[:40]!r}")
        runner = await caught_up(call, VIEW, min_position)
        docs = await runner.list(DEFINITIONS, after=after or "", limit=limit + 1)
        page = [msgspec.convert(doc.data, TableSummary) for doc in docs[:limit]]
        return Response(Tables(tables=page, next=page[-1].table if len(docs) > limit else None))

    @put(
        "/{table:str}",
        summary="Define a table (its rows' JSON Schema, a description); If-Match makes it a compare-and-set",
    )
    async def define(
        self, table: Table, data: JSONBody[TableDefinitionBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(data.expected_version, if_match)
        spine = await _writer(call)
        result = await tables.define(spine, call.ctx, table, data.schema, data.description, wanted)
        return _written({"table": table}, result)

    @get("/{table:str}", summary="A table's definition (ETag); 404 when never defined")
    async def read_definition(
        self, table: Table, call: CallDep, min_position: MinPosition = None
    ) -> Response[TableDefinition]:
        runner = await caught_up(call, VIEW, min_position)
        doc = await runner.get(DEFINITIONS, table)
        if doc is None:
            raise TableNotFound(table)
        found = served(msgspec.convert(doc.data, TableDefinition))
        return Response(found, headers=_etag(found.version))

    @get("/{table:str}/rows", summary="Live rows whose keys start with `prefix`, in key order, by cursor")
    async def list_rows(
        self,
        table: Table,
        call: CallDep,
        prefix: Annotated[
            str, Parameter(description="only keys starting with it: agents/", pattern=ROW_PREFIX_PATTERN)
        ] = "",
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Rows]:
        if after is not None and not matches(after, ROW_KEY_PATTERN):
            raise InvalidCursor(f"after must be a row key, got {after[:40]!r}")
        runner = await caught_up(call, VIEW, min_position)
        start = rows_prefix(table) + (after or "")  # every key of the table is longer than its prefix
        docs = await runner.list(LIVE, prefix=rows_prefix(table) + prefix, after=start, limit=limit + 1)
        page = served_each([msgspec.convert(doc.data, ListedRow) for doc in docs[:limit]])
        return Response(Rows(table=table, rows=page, next=page[-1].key if len(docs) > limit else None))

    @put(
        "/{table:str}/rows/{key:path}",
        summary="Write a row (a new version); expected_version or If-Match makes it a compare-and-set",
    )
    async def write(
        self,
        table: Table,
        key: KeyPath,
        data: JSONBody[RowBody],
        call: CallDep,
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
    ) -> Response[dict[str, Any]]:
        row = _key(_sent(request, key))
        wanted = precondition(data.expected_version, if_match)
        spine = await _writer(call)
        result = await tables.write_row(spine, call.ctx, table, row, data.value, wanted)
        return _written({"table": table, "key": row}, result)

    @delete("/{table:str}/rows/{key:path}", status_code=200, summary="Delete a row: a tombstone version")
    async def remove(
        self,
        table: Table,
        key: KeyPath,
        call: CallDep,
        request: Request[Any, Any, Any],
        if_match: IfMatch = None,
        expected_version: Expected = None,
    ) -> Response[dict[str, Any]]:
        row = _key(_sent(request, key))
        wanted = precondition(expected_version, if_match)
        spine = await _writer(call)
        result = await tables.delete_row(spine, call.ctx, table, row, wanted)
        return _written({"table": table, "key": row, "deleted": True}, result)

    @get(
        "/{table:str}/rows/{key:path}",
        summary="A row's latest version (ETag); …/versions: its history by cursor; …/versions/{n}: one version",
    )
    async def read(
        self,
        table: Table,
        key: KeyPath,
        call: CallDep,
        request: Request[Any, Any, Any],
        after: Annotated[
            str | None, Parameter(description="history only: a version, the versions after it")
        ] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Row | RowHistory]:
        row, wanted = _address(_sent(request, key))
        start = parse_cursor(after) if wanted == "versions" else 0
        runner = await caught_up(call, VIEW, min_position)
        latest = await runner.get(LATEST, row_key(table, row))
        if latest is None:
            raise TableRowNotFound(table, row)
        if wanted == "versions":  # the history's ETag: the row's latest version
            history = await _history(runner, table, row, start, limit)
            return Response(history, headers=_etag(latest.data["version"]))
        found = _live(table, row, latest) if wanted == "latest" else await _version(runner, latest, wanted)
        return Response(found, headers=_etag(found.version))


def _live(table: str, key: str, latest: ViewDoc) -> Row:
    if latest.data["deleted"]:
        raise TableRowNotFound(table, key, deleted=True, version=latest.data["version"])
    return served(msgspec.convert(latest.data, Row))


async def _version(runner: Runner, latest: ViewDoc, version: int) -> Row:
    table, key = latest.data["table"], latest.data["key"]
    doc = await runner.get(VERSIONS, version_key(table, key, version)) if version > 0 else None
    if doc is None:
        raise TableRowVersionNotFound(table, key, version, latest.data["version"])
    return served(msgspec.convert(doc.data, Row))


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


async def _history(runner: Runner, table: str, key: str, after: int, limit: int) -> RowHistory:
    docs = await runner.list(
        VERSIONS, prefix=versions_prefix(table, key), after=version_key(table, key, after), limit=limit + 1
    )
    page = [msgspec.convert(doc.data, RowVersionSummary) for doc in docs[:limit]]
    return RowHistory(
        table=table, key=key, versions=page, next=page[-1].version if len(docs) > limit else None
    )


def _sent(request: Request[Any, Any, Any], path: str) -> str:
    """The `{key:path}` parameter as the client sent it. The router hands it over normalized (an
    empty segment or a trailing '/' dropped): rather than act on another key than the one sent, a
    path it changed is refused as the key it names would be (422)."""
    raw: bytes = request.scope.get("raw_path") or b""
    sent = unquote(raw.partition(b"?")[0].decode("latin-1"), encoding="utf-8", errors="replace")
    if raw and not sent.endswith(f"/rows{path}"):
        raise InvalidRequest(
            "a row key has no empty segment and no trailing '/': "
            f"{sent.rpartition('/rows/')[2][:140]!r} is no key"
        )
    return path


def _key(path: str) -> str:
    """The row key a `{key:path}` parameter names (Litestar keeps its leading '/')."""
    return check("key", path.removeprefix("/"), ROW_KEY_PATTERN)


def _address(path: str) -> tuple[str, Literal["latest", "versions"] | int]:
    """What a GET below `rows/` asks for: the row, its history, or one version of it."""
    match = _ADDRESS.match(path)
    if match is None:  # only an empty path, which the router never hands over
        raise InvalidRequest("a row key is required")
    row, version = check("key", match["key"], ROW_KEY_PATTERN), match["version"]
    if match["history"] is None:
        return row, "latest"
    if version is None:
        return row, "versions"
    if not _VERSION.match(version):
        raise InvalidRequest(f"a version is a whole number, got {version[:40]!r}")
    return row, int(version)


async def _writer(call: Call) -> EventSpine:
    """The spine to decide on, once the view that will show the decision is known to be routed."""
    await call.view(VIEW)  # 503 before appending
    return await call.spine()


def _written(body: dict[str, Any], result: AppendResult) -> Response[dict[str, Any]]:
    answer = {**body, "version": result.stream_version, "position": result.last_position}
    headers = {"X-Spine-Position": str(result.last_position), **_etag(result.stream_version)}
    return Response(answer, headers=headers)

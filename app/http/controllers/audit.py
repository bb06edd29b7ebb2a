"""`/v1/audit`: the project's append-only audit view — writes, client records, security events.

A read merges two views of the one `audit` projection: the project's partition (every write,
and the records clients add here) and the tenant's audit trail (the security events that concern
this project or the whole tenant). Both are keyed by time, so one cursor pages through both.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post, route
from litestar.params import JSONBody, Parameter, PathParameter, QueryParameter

from app.http.reads import MinPosition, Problem, caught_up, reflecting, served, served_each
from app.http.services import Call, CallDep
from app.usecases.audit import trail_partition
from domain.append import AppendRequest
from domain.audit import (
    BY_ID,
    CLIENT_STREAM,
    TENANT_WIDE,
    Action,
    AuditRecord,
    Keyed,
    Query,
    Resource,
    concerns,
    merge,
    query_audit,
    recorded_event,
    scope,
)
from domain.errors import AuditAppendOnly, AuditNotFound, Forbidden
from domain.events import EVENT_ID_PATTERN, EventId
from domain.ids import new_event_id
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["audit"]
MAX_PAGE = 1000
RecordId = Annotated[str, PathParameter(description="the record's event id", pattern=EVENT_ID_PATTERN)]
Filter = Annotated[str | None, Parameter(max_length=512)]
From = Annotated[str | None, QueryParameter(name="from", description="ISO 8601 time, inclusive")]
To = Annotated[str | None, QueryParameter(name="to", description="ISO 8601 time, exclusive")]


class RecordBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A client's own record. The actor is the token's user: no field of the body may name one."""

    action: Action
    resource: Resource
    details: dict[str, Any] | None = None
    id: EventId | None = None  # an idempotency key: a retry answers the first record's position


class Record(AuditRecord, frozen=True, kw_only=True):
    """A record of a list: `problem` says why its `details` are null (`app.http.reads.served_each`)."""

    problem: Problem = msgspec.UNSET


class Records(msgspec.Struct, frozen=True, kw_only=True):
    records: list[Record]
    next: str | None


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]

    @post("/", status_code=201, summary="Add a record of the caller's own; the actor is the token's user")
    async def add(self, data: JSONBody[RecordBody], call: CallDep) -> Response[dict[str, Any]]:
        ctx = call.ctx
        await call.view(VIEW)  # no audit route: 503, nothing appended
        spine = await call.spine()
        event = recorded_event(data.action, data.resource, data.details, event_id=data.id or new_event_id())
        request = AppendRequest(stream=CLIENT_STREAM, events=[event], meta=ctx.event_meta())
        result = await spine.append(ctx.partition, request)
        headers = {"X-Spine-Position": str(result.last_position)}
        return Response({"id": event.id, "position": result.last_position}, status_code=201, headers=headers)

    @get("/", summary="Records by time (oldest first), optionally of one actor and/or action")
    async def list_records(
        self,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        actor: Filter = None,
        action: Filter = None,
        start: From = None,
        end: To = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 100,
        min_position: MinPosition = None,
    ) -> Response[Records]:
        actor = _readable_actor(call, actor)
        query = query_audit(actor=actor, action=action, after=after, start=start, end=end)
        project, trail = await _views(call, min_position)
        # The project's records, and the trail's that concern this project or the whole tenant
        sources = [(project, ""), (trail, scope(call.ctx.project_id)), (trail, scope(TENANT_WIDE))]
        pages = [await _range(runner, query, prefix, limit) for runner, prefix in sources]
        page, cursor = merge(pages, limit=limit, before=query.before)
        records = served_each([msgspec.convert(data, Record) for _, data in page])
        return Response(Records(records=records, next=cursor))

    @get("/{record_id:str}", summary="One record, by its event id")
    async def read_record(
        self, record_id: RecordId, call: CallDep, min_position: MinPosition = None
    ) -> Response[AuditRecord]:
        project, trail = await _views(call, min_position)
        # The trail first: only Spine writes there, while a client may choose its events' ids.
        for runner in (trail, project):
            doc = await runner.get(BY_ID, record_id)
            record = None if doc is None else msgspec.convert(doc.data, AuditRecord)
            readable = record is not None and _readable_actor(call, None) in (None, record.actor)
            if record is not None and readable and concerns(record, call.ctx.project_id):
                return Response(served(record))
        raise AuditNotFound(record_id)

    # A 405 handler serves nothing: its `Allow` is the path's, as OPTIONS answers it (`app.http.allow`)
    @route("/", http_method=["PUT", "PATCH", "DELETE"], status_code=405, summary="Refused: append-only")
    async def refuse_change(self, request: Request[Any, Any, Any]) -> None:
        raise AuditAppendOnly(request.method, ("GET", "OPTIONS", "POST"))

    @route("/{record_id:str}", http_method=["PUT", "PATCH", "DELETE"], status_code=405, summary="Refused")
    async def refuse_record_change(self, request: Request[Any, Any, Any]) -> None:
        raise AuditAppendOnly(request.method, ("GET", "OPTIONS"))


def _readable_actor(call: Call, actor: str | None) -> str | None:
    """Tenant admins read every record; a member reads their own only (records name other users'
    resources, such as their memory keys)."""
    ctx = call.ctx
    assert ctx.user_id is not None
    if call.services.control.state.role_of(ctx.tenant_id, ctx.user_id) == "admin":
        return actor
    if actor not in (None, ctx.user_id):
        raise Forbidden("a member reads their own audit records; tenant admins read everyone's")
    return ctx.user_id


async def _views(call: Call, min_position: str | None) -> tuple[Runner, Runner]:
    """The project's view (caught up to `min_position`) and the tenant trail's, caught up to the
    trail's head: security events have no position in the project's log to wait for."""
    project = await caught_up(call, VIEW, min_position)
    ctx, spine = call.ctx, call.services.spine
    partition = trail_partition(ctx.tenant_id, ctx.env)
    trail = await call.services.views.runner(VIEW, ctx, source=(partition, spine))
    await reflecting(trail, await spine.head(partition), call.services.settings.read_wait_seconds)
    return project, trail


async def _range(runner: Runner, query: Query, prefix: str, limit: int) -> list[Keyed]:
    """Up to `limit + 1` records of the query's range in one view, under their time keys."""
    start = prefix + query.prefix
    docs = await runner.list(query.collection, prefix=start, after=start + query.after, limit=limit + 1)
    return [(doc.key[len(start) :], doc.data) for doc in docs]

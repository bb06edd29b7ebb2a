"""`/v1/flags`: feature flags of the project, versioned and audited, evaluated for the caller."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import HeaderParameter, JSONBody, Parameter, PathParameter, QueryParameter
from litestar.response import Stream

from app.http.flag_frames import caller_of, flag_frame
from app.http.follow import follow
from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, Problem, caught_up, served, served_each
from app.http.services import Call, CallDep
from app.usecases import flags
from domain.cursor import check_cursor, parse_cursor
from domain.errors import FlagNotFound, InvalidCursor, InvalidRequest
from domain.events import AppendResult, ExpectedVersion
from domain.flag_evaluation import NOT_FOUND, evaluate
from domain.flags import (
    CHANGED,
    CURRENT,
    DELETED,
    FLAG_KEY_PATTERN,
    HISTORY,
    LIVE,
    MAX_REASON,
    FlagSpec,
    Reason,
    definition_of,
    history_key,
    history_prefix,
)
from domain.identifiers import matches
from domain.ports import EventSpine
from projections.catalog import VIEWS

VIEW = VIEWS["flags"]
MAX_PAGE, MAX_KEYS = 1000, 100
Key = Annotated[
    str, PathParameter(description="the flag key: new-checkout, search.v2", pattern=FLAG_KEY_PATTERN)
]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
After = Annotated[str | None, Parameter(description="page cursor: the `next` of the previous page")]
Expected = Annotated[
    int | None, QueryParameter(name="expected_version", ge=0, description="the version you read")
]
DeleteReason = Annotated[
    str,
    QueryParameter(name="reason", min_length=1, max_length=MAX_REASON, pattern=r"\S", description="why"),
]
Keys = Annotated[
    str | None,
    QueryParameter(
        name="keys",
        max_length=MAX_KEYS * 129,
        description=f"flag keys, comma-separated (at most {MAX_KEYS}); absent: every flag of the project",
    ),
]


class FlagBody(FlagSpec, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A flag's whole definition and why it changes. Identity fields may repeat the request's
    identity (the guard refuses any that disagree) and are never stored."""

    reason: Reason
    expected_version: ExpectedVersion | None = None
    tenant_id: str | None = None
    env: str | None = None
    mode: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None

    def spec(self) -> FlagSpec:
        fields = msgspec.structs.asdict(self)
        return FlagSpec(**{name: fields[name] for name in FlagSpec.__struct_fields__})


class Audited(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    version: int
    position: int
    changed_at: str
    changed_by: str | None
    reason: str | None


class Flag(Audited, frozen=True, kw_only=True):
    type: str
    default: Any
    enabled: bool
    rules: list[dict[str, Any]]
    description: str | None
    problem: Problem = msgspec.UNSET  # in a list: why its deep fields are null


class FlagList(msgspec.Struct, frozen=True, kw_only=True):
    """Live flags by key; `next` (null on the last page) is the `after` of the next page."""

    flags: list[Flag]
    next: str | None


class FlagVersion(Audited, frozen=True, kw_only=True):
    change: str
    flag: dict[str, Any] | None  # null for a deletion
    problem: Problem = msgspec.UNSET  # why `flag` is null when its stored version nests too deep


class FlagHistory(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    versions: list[FlagVersion]
    next: int | None


class Evaluated(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    value: Any
    reason: str
    rule: int | None = None
    version: int | None = None


class Evaluations(msgspec.Struct, frozen=True, kw_only=True):
    """Each asked flag's value for the caller (`not_found` for a key with no live flag), and the
    position of the log the answer reflects; `next` continues a listing of every flag."""

    flags: dict[str, Evaluated]
    position: int
    next: str | None = None


class FlagsController(Controller):
    path = "/v1/flags"
    tags = ["flags"]

    @put(
        "/{key:str}",
        summary="Write a flag's definition; expected_version or If-Match makes it a compare-and-set",
    )
    async def save(
        self, key: Key, data: JSONBody[FlagBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(data.expected_version, if_match)
        spine = await _writer(call)
        result = await flags.save(spine, call.ctx, key, data.spec(), data.reason, wanted)
        return _written({"key": key, "version": result.stream_version}, result)

    @get("/{key:str}", summary="A flag's definition, with its version as ETag; 404 when absent or deleted")
    async def read(self, key: Key, call: CallDep, min_position: MinPosition = None) -> Response[Flag]:
        runner = await caught_up(call, VIEW, min_position)
        doc = await runner.get(CURRENT, key)
        if doc is None:
            raise FlagNotFound(key)
        if doc.data["deleted"]:
            raise FlagNotFound(key, deleted=True, version=doc.data["version"])
        flag = served(msgspec.convert(doc.data, Flag))
        return Response(flag, headers={"ETag": f'"{flag.version}"'})

    @delete("/{key:str}", status_code=200, summary="Delete a flag (its history stays); `reason` says why")
    async def remove(
        self,
        key: Key,
        reason: DeleteReason,
        call: CallDep,
        if_match: IfMatch = None,
        expected_version: Expected = None,
    ) -> Response[dict[str, Any]]:
        wanted = precondition(expected_version, if_match)
        spine = await _writer(call)
        result = await flags.remove(spine, call.ctx, key, reason, wanted)
        return _written({"key": key, "status": "deleted", "version": result.stream_version}, result)

    @get("/", summary="The project's live flags, by key, by cursor")
    async def list_flags(
        self, call: CallDep, after: After = None, limit: Limit = 100, min_position: MinPosition = None
    ) -> Response[FlagList]:
        _check_after(after)
        runner = await caught_up(call, VIEW, min_position)
        docs = await runner.list(LIVE, after=after or "", limit=limit + 1)
        page = served_each([msgspec.convert(doc.data, Flag) for doc in docs[:limit]])
        return Response(FlagList(flags=page, next=page[-1].key if len(docs) > limit else None))

    @get(
        "/{key:str}/history", summary="Every version of a flag: who changed it, when, why, and the whole flag"
    )
    async def history(
        self,
        key: Key,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="a version: the versions after it")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[FlagHistory]:
        start = parse_cursor(after)
        runner = await caught_up(call, VIEW, min_position)
        if await runner.get(CURRENT, key) is None:
            raise FlagNotFound(key)
        docs = await runner.list(
            HISTORY, prefix=history_prefix(key), after=history_key(key, start), limit=limit + 1
        )
        page = served_each([msgspec.convert(doc.data, FlagVersion) for doc in docs[:limit]])
        return Response(
            FlagHistory(key=key, versions=page, next=page[-1].version if len(docs) > limit else None)
        )

    @get("/evaluate", summary="Flags evaluated for the caller's context", opt={"query_identity": True})
    async def evaluate(
        self,
        call: CallDep,
        keys: Keys = None,
        after: After = None,
        limit: Limit = MAX_PAGE,
        min_position: MinPosition = None,
    ) -> Response[Evaluations]:
        wanted = _keys(keys)
        _check_after(after)
        runner = await caught_up(call, VIEW, min_position)
        position = runner.position  # before the reads: the answer reflects at least this
        caller = caller_of(call.ctx)
        answers: dict[str, Evaluated] = {}
        cursor = None
        if wanted is None:
            docs = await runner.list(LIVE, after=after or "", limit=limit + 1)
            found = {doc.key: doc.data for doc in docs[:limit]}
            cursor = docs[limit - 1].key if len(docs) > limit else None
        else:
            found = {}
            for key in wanted:
                doc = await runner.get(CURRENT, key)
                if doc is not None and not doc.data["deleted"]:
                    found[key] = doc.data
        for key in wanted if wanted is not None else found:
            data = found.get(key)
            if data is None:
                answers[key] = Evaluated(value=NOT_FOUND.value, reason=NOT_FOUND.reason)
                continue
            result = evaluate(key, definition_of(data), caller)
            answers[key] = Evaluated(
                value=result.value, reason=result.reason, rule=result.rule, version=data["version"]
            )
        return Response(served(Evaluations(flags=answers, position=position, next=cursor)))

    @get(
        "/stream",
        summary="Follow the project's flag changes over Server-Sent Events, evaluated for the caller",
        media_type="text/event-stream",
        # as /v1/events/stream: a follower slot, and a stream ticket for a page's EventSource
        opt={"follower": True, "ticket": True, "query_identity": True},
    )
    async def follow(
        self,
        call: CallDep,
        last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        after: Annotated[str | None, Parameter(description="cursor when no Last-Event-ID is sent")] = None,
    ) -> Stream:
        if last_event_id_header is not None:
            cursor = parse_cursor(last_event_id_header, name="Last-Event-ID")
        else:
            cursor = parse_cursor(after)
        # Validate before the 200 goes out: afterwards an error can only end the stream.
        services, partition = call.services, call.ctx.partition
        await call.view(VIEW)  # a project whose flags have no store has no flags to follow
        spine = await call.spine()
        check_cursor(cursor, await spine.head(partition))
        settings = services.settings
        events = follow(
            spine,
            services.fanout,
            services.metrics,
            partition,
            after=cursor,
            stream=None,
            types=(CHANGED, DELETED),
            retry_ms=settings.retry_ms,
            heartbeat_seconds=settings.heartbeat_seconds,
            draining=services.draining,
            frame=flag_frame(caller_of(call.ctx)),
        )
        return Stream(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _keys(keys: str | None) -> list[str] | None:
    """The asked keys, each once, in the order asked; None: every flag."""
    if keys is None:
        return None
    wanted = list(dict.fromkeys(key.strip() for key in keys.split(",")))
    if len(wanted) > MAX_KEYS:
        raise InvalidRequest(f"keys: at most {MAX_KEYS} flags per request, got {len(wanted)}")
    for key in wanted:
        if not matches(key, FLAG_KEY_PATTERN):
            raise InvalidRequest(f"keys: {key[:40]!r} is not a flag key (it must match {FLAG_KEY_PATTERN})")
    return wanted


def _check_after(after: str | None) -> None:
    if after is not None and not matches(after, FLAG_KEY_PATTERN):
        raise InvalidCursor(f"after must be a flag key a listing answered as next, got {after[:40]!r}")


async def _writer(call: Call) -> EventSpine:
    """The spine to append to, once the view that will show the write is known to be routed."""
    await call.view(VIEW)  # 503 before appending
    return await call.spine()


def _written(body: dict[str, Any], result: AppendResult) -> Response[dict[str, Any]]:
    headers = {"X-Spine-Position": str(result.last_position), "ETag": f'"{result.stream_version}"'}
    return Response({**body, "position": result.last_position}, headers=headers)

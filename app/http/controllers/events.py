"""`/v1/events` and `/v1/streams`: append, read by cursor, follow over SSE, read one stream."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, MediaType, Response, get, post
from litestar.params import HeaderParameter, JSONBody, Parameter, PathParameter, QueryParameter
from litestar.response import Stream

from app.http.follow import follow
from app.http.services import Call, CallDep
from domain.append import MAX_EVENTS_PER_APPEND, AppendRequest
from domain.cursor import MAX_POSITION, check_cursor, parse_cursor
from domain.errors import InvalidRequest, StreamNotFound
from domain.events import (
    ANY,
    STREAM_PATTERN,
    AppendResult,
    EncodedPage,
    Event,
    ExpectedVersion,
    NewEvent,
    Page,
    StreamName,
)
from domain.owned import owning_route

MAX_PAGE = 1000
TRUNCATED = "X-Spine-Truncated"
_result_encoder = msgspec.json.Encoder()


class AppendBody(msgspec.Struct, frozen=True, kw_only=True):
    stream: StreamName
    events: Annotated[list[NewEvent], msgspec.Meta(min_length=1, max_length=MAX_EVENTS_PER_APPEND)]
    expected_version: ExpectedVersion = ANY


class StreamPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[Event]
    version: int


Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
StreamFilter = Annotated[
    str | None, QueryParameter(name="stream", description="only this stream", pattern=STREAM_PATTERN)
]
TypeFilter = Annotated[
    list[str] | None, QueryParameter(name="type", description="only these types (repeatable)")
]
NAMED = (
    "true (default): each frame has an `event: <type>` line, for `addEventListener(type, …)`; "
    "false: frames without it, which a browser dispatches as `message` events, so `onmessage` alone "
    "receives every event; the type is in each frame's data (the event's JSON) either way"
)


class EventsController(Controller):
    path = "/v1/events"
    tags = ["events"]

    @post("/", status_code=201, summary="Append events to a stream, atomically")
    async def append(self, data: JSONBody[AppendBody], call: CallDep) -> Response[AppendResult]:
        ctx = call.ctx
        owner = owning_route(data.stream, (event.type for event in data.events))
        if owner is not None:
            raise InvalidRequest(f"this stream or event type is written through {owner}, not /v1/events")
        request = AppendRequest(
            stream=data.stream,
            events=data.events,
            expected_version=data.expected_version,
            meta=ctx.event_meta(),
        )
        spine = await call.spine()
        result = await spine.append(ctx.partition, request)
        headers = {"X-Spine-Position": str(result.last_position)}
        # Encoded here, by one encoder made once: the hot path skips the serializer's lookups.
        body = _result_encoder.encode(result)
        return Response(body, status_code=201, headers=headers, media_type=MediaType.JSON)  # type: ignore[arg-type]

    @get("/", summary="Read a partition by cursor", opt={"ticket": True})
    async def read(
        self,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="position cursor; events after it")] = None,
        limit: Limit = 100,
        stream: StreamFilter = None,
        types: TypeFilter = None,
    ) -> Response[Page]:
        spine = await call.spine()
        cursor = parse_cursor(after)
        page = await spine.read_encoded(
            call.ctx.partition, after=cursor, limit=limit, stream=stream, types=types or ()
        )
        body = _page_json(page)  # a Page's JSON: the annotation documents its shape
        return Response(body, media_type=MediaType.JSON, headers=_truncated(call, cursor))  # type: ignore[arg-type]

    @get(
        "/stream",
        summary="Follow a partition over Server-Sent Events",
        media_type="text/event-stream",
        # a follower takes one of the tenant's follower slots (`app.http.limits`); a page's
        # EventSource, which sends no headers, may bring a stream ticket instead (`app.http.identity`)
        opt={"follower": True, "ticket": True},
    )
    async def follow(
        self,
        call: CallDep,
        last_event_id_header: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
        after: Annotated[str | None, Parameter(description="cursor when no Last-Event-ID is sent")] = None,
        last_event_id: Annotated[str | None, Parameter(description="alias of after")] = None,
        stream: StreamFilter = None,
        types: TypeFilter = None,
        named: Annotated[bool, QueryParameter(name="named", description=NAMED)] = True,
    ) -> Stream:
        if last_event_id_header is not None:
            cursor = parse_cursor(last_event_id_header, name="Last-Event-ID")
        else:
            cursor = parse_cursor(after if after is not None else last_event_id)
        # Validate before the 200 goes out: afterwards an error can only end the stream.
        services, partition = call.services, call.ctx.partition
        spine = await call.spine()
        check_cursor(cursor, await spine.head(partition))
        settings = services.settings
        events = follow(
            spine,
            services.fanout,
            services.metrics,
            partition,
            after=cursor,
            stream=stream,
            types=types or (),
            retry_ms=settings.retry_ms,
            heartbeat_seconds=settings.heartbeat_seconds,
            draining=services.draining,
            named=named,
            truncated_through=_truncated_through(call),
        )
        return Stream(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


class StreamsController(Controller):
    path = "/v1/streams"
    tags = ["events"]

    @get("/{stream:str}", summary="Read one stream by version")
    async def read_stream(
        self,
        stream: Annotated[str, PathParameter(description="the stream name", pattern=STREAM_PATTERN)],
        call: CallDep,
        after_version: Annotated[int, Parameter(ge=0, le=MAX_POSITION)] = 0,  # beyond: not a version
        limit: Limit = 100,
    ) -> Response[StreamPage]:
        spine = await call.spine()
        events, version = await spine.read_stream(
            call.ctx.partition, stream, after_version=after_version, limit=limit
        )
        if version == 0:
            raise StreamNotFound(stream)
        # versions are dense: one missing from the page was removed by retention
        skipped = any(e.version != after_version + 1 + i for i, e in enumerate(events))
        headers = {TRUNCATED: str(_truncated_through(call))} if skipped else {}
        return Response(StreamPage(events=events, version=version), headers=headers)


def _truncated_through(call: Call) -> int:
    """How far retention may have removed events from the caller's partition (0: never)."""
    return call.services.control.state.truncated_through(call.ctx.partition.key)


def _truncated(call: Call, cursor: int) -> dict[str, str]:
    """`X-Spine-Truncated` for a read from `cursor`: the page holds what survived up to it."""
    through = _truncated_through(call)
    return {TRUNCATED: str(through)} if cursor < through else {}


def _page_json(page: EncodedPage) -> bytes:
    """A `Page` made of the stored events as they are, as SSE sends them: never decoded and encoded
    again, so no event, however deeply an older version let it nest, can make a page fail."""
    events = b",".join(body for _, _, body in page.events)
    return b'{"events":[%s],"next":%d,"head":%d}' % (events, page.next, page.head)

"""`/v1/threads` and `/v1/canvases`: the realtime registry (owner, members, surface, archived),
changed by the owner only, and the messages its members post, events of the thread's stream
(followed over SSE with `GET /v1/events/stream?stream=thread:{id}`).

One controller serves both kinds: `ThreadsController` and `CanvasesController` name their kind
and their listing's field."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.params import JSONBody, Parameter, PathParameter, QueryParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, caught_up, served
from app.http.services import Call, CallDep
from app.usecases import realtime
from domain.cursor import MAX_POSITION
from domain.errors import InvalidCursor, ThreadNotFound
from domain.events import Event, EventId, ExpectedVersion
from domain.identifiers import DOCUMENT_ID_PATTERN, IDENTIFIER_PATTERN
from domain.ports import EventSpine
from domain.realtime import (
    BY_MEMBER,
    REGISTRY,
    Kind,
    Members,
    NewMessage,
    NewThread,
    Patch,
    ThreadId,
    Title,
    UserId,
    archived_part,
    check_message,
    check_patch,
    check_reader,
    listing_suffix,
    member_prefix,
    parse_cursor,
    registry_key,
    surface_part,
)
from domain.views import ViewDoc
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["realtime"]
MAX_PAGE = 1000
Id = Annotated[str, PathParameter(description="its id", pattern=DOCUMENT_ID_PATTERN)]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]


class _Sent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every write may send besides its own fields. Unknown fields are refused, so a typo never
    silently drops a field; identity fields may repeat the request's identity (the guard refuses
    any that disagree) and are never stored."""

    tenant_id: str | None = None
    env: str | None = None
    mode: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None


class CreateBody(_Sent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: ThreadId | None = None
    title: Title | None = None
    members: Members = msgspec.field(default_factory=list)

    def new(self) -> NewThread:
        return NewThread(id=self.id, title=self.title, members=self.members)


class PatchBody(_Sent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: Title | None = None
    owner: UserId | None = None
    add_members: Members | None = None
    remove_members: Members | None = None
    archived: bool | None = None
    expected_version: ExpectedVersion | None = None

    def __post_init__(self) -> None:
        if self.archived is False:
            raise ValueError("archived: only true; archiving is for good")
        check_patch(self.patch())

    def patch(self) -> Patch:
        return Patch(
            title=self.title, owner=self.owner, add_members=self.add_members,
            remove_members=self.remove_members, archived=True if self.archived else None,
        )  # fmt: skip


class MessageBody(_Sent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    content: Any
    metadata: dict[str, Any] | None = None
    id: EventId | None = None

    def __post_init__(self) -> None:
        check_message(self.content, self.metadata)

    def message(self) -> NewMessage:
        return NewMessage(content=self.content, metadata=self.metadata, id=self.id)


class Written(msgspec.Struct, frozen=True, kw_only=True):
    """The registry's version after the write (its ETag), and the event types it appended in order
    (none: it changed nothing)."""

    kind: str
    id: str
    version: int
    position: int
    changes: list[str]


class Thread(msgspec.Struct, frozen=True, kw_only=True):
    """A registry entry; `version` (the ETag) is its last registry event's version."""

    kind: str
    id: str
    title: str | None
    owner: str
    members: list[str]
    surface_id: str
    created_at: str
    created_by: str | None
    archived: bool
    archived_at: str | None
    version: int
    change: str
    position: int
    updated_at: str
    updated_by: str | None


class ThreadList(msgspec.Struct, frozen=True, kw_only=True):
    """The caller's threads (those it is a member of): live before archived, then by surface and
    id; `next` (null on the last page) is the cursor."""

    threads: list[Thread]
    next: str | None


class CanvasList(msgspec.Struct, frozen=True, kw_only=True):
    """The caller's canvases, as `ThreadList` lists threads."""

    canvases: list[Thread]
    next: str | None


class MessagePosted(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    position: int


class Message(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    position: int
    author: str | None
    surface_id: str | None
    content: Any
    metadata: Any
    posted_at: str


class MessagePage(msgspec.Struct, frozen=True, kw_only=True):
    """Messages after `?after=` (a version of the thread's stream) in order; `next` (null: no
    more) is the version to read after; `version` the stream's."""

    kind: str
    id: str
    messages: list[Message]
    next: int | None
    version: int


class _RegistryController(Controller):
    """The routes of one kind; a subclass names it."""

    kind: ClassVar[Kind]

    @post("/", status_code=201, summary="Create one; the caller owns it and is a member")
    async def create(self, data: JSONBody[CreateBody], call: CallDep) -> Response[Written]:
        ident, written = await realtime.create(await _writer(call), call.ctx, self.kind, data.new())
        headers = {"Location": f"{self.path}/{ident}"}
        return _written(self.kind, ident, written, status_code=201, headers=headers)

    @get("/{id:str}", summary="Its registry entry (members and tenant admins); ETag: its version")
    async def read(self, id: Id, call: CallDep, min_position: MinPosition = None) -> Response[Thread]:
        runner = await caught_up(call, VIEW, min_position)
        doc = await runner.get(REGISTRY, registry_key(self.kind, id))
        if doc is None:
            raise ThreadNotFound(self.kind, id)
        assert call.ctx.user_id is not None
        check_reader(doc.data["members"], self.kind, id, call.ctx.user_id, admin="admin" in call.ctx.roles)
        thread = served(msgspec.convert(doc.data, Thread))
        return Response(thread, headers={"ETag": f'"{thread.version}"'})

    @patch(
        "/{id:str}",
        summary="Change the registry (the owner; a tenant admin may transfer the ownership); "
        "expected_version or If-Match makes it a compare-and-set",
    )
    async def change(
        self, id: Id, data: JSONBody[PatchBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[Written]:
        wanted = precondition(data.expected_version, if_match)
        written = await realtime.change(await _writer(call), call.ctx, self.kind, id, data.patch(), wanted)
        return _written(self.kind, id, written)

    @post(
        "/{id:str}/messages", status_code=201, summary="Post a message (members); its id makes a retry safe"
    )
    async def post_message(
        self, id: Id, data: JSONBody[MessageBody], call: CallDep
    ) -> Response[MessagePosted]:
        event_id, result = await realtime.post_message(
            await _writer(call), call.ctx, self.kind, id, data.message()
        )
        body = MessagePosted(id=event_id, version=result.stream_version, position=result.last_position)
        return Response(body, status_code=201, headers={"X-Spine-Position": str(result.last_position)})

    @get("/{id:str}/messages", summary="Its messages in order, from the log, by version (members)")
    async def read_messages(
        self,
        id: Id,
        call: CallDep,
        after: Annotated[
            int, Parameter(ge=0, le=MAX_POSITION, description="a version: messages after it")
        ] = 0,
        limit: Limit = 100,
    ) -> Response[MessagePage]:
        found = await realtime.read_messages(
            await _writer(call), call.ctx, self.kind, id, after=after, limit=limit
        )
        messages = [_message(event) for event in found.events]
        page = MessagePage(kind=self.kind, id=id, messages=messages, next=found.next, version=found.version)
        return Response(page)

    async def _listing(
        self,
        call: Call,
        surface: str | None,
        archived: bool | None,
        after: str | None,
        limit: int,
        min_position: str | None,
    ) -> tuple[list[Thread], str | None]:
        """The caller's entries: one prefix of the member index per archived state asked for."""
        runner = await caught_up(call, VIEW, min_position)
        assert call.ctx.user_id is not None
        mine = member_prefix(self.kind, call.ctx.user_id)
        states = [False, True] if archived is None else [archived]
        start = None if after is None else parse_cursor(after)
        if start is not None and (start.archived not in states or surface not in (None, start.surface)):
            raise InvalidCursor("after is a `next` of another listing (other archived or surface filters)")
        docs: list[ViewDoc] = []
        for state in states:
            if start is not None and state < start.archived:
                continue  # a state the cursor is past
            prefix = mine + archived_part(state) + ("" if surface is None else surface_part(surface))
            resume = mine + listing_suffix(*start) if start is not None and start.archived == state else ""
            docs += await _list(runner, prefix, resume, limit + 1 - len(docs))
            if len(docs) > limit:
                break
        listed = [served(msgspec.convert(doc.data, Thread)) for doc in docs[:limit]]
        more = len(docs) > limit
        return listed, docs[limit - 1].key.removeprefix(mine) if more else None


class ThreadsController(_RegistryController):
    path = "/v1/threads"
    tags = ["realtime"]
    kind = "thread"

    @get("/", summary="The caller's threads (it is a member of), by cursor")
    async def list_threads(
        self,
        call: CallDep,
        surface: Annotated[
            str | None,
            QueryParameter(description="only those begun on this surface", pattern=IDENTIFIER_PATTERN),
        ] = None,
        archived: Annotated[
            bool | None, QueryParameter(description="only archived (true) or live (false)")
        ] = None,
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[ThreadList]:
        listed, cursor = await self._listing(call, surface, archived, after, limit, min_position)
        return Response(ThreadList(threads=listed, next=cursor))


class CanvasesController(_RegistryController):
    path = "/v1/canvases"
    tags = ["realtime"]
    kind = "canvas"

    @get("/", summary="The caller's canvases (it is a member of), by cursor")
    async def list_canvases(
        self,
        call: CallDep,
        surface: Annotated[
            str | None,
            QueryParameter(description="only those begun on this surface", pattern=IDENTIFIER_PATTERN),
        ] = None,
        archived: Annotated[
            bool | None, QueryParameter(description="only archived (true) or live (false)")
        ] = None,
        after: Annotated[str | None, Parameter(description="the `next` of the previous page")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[CanvasList]:
        listed, cursor = await self._listing(call, surface, archived, after, limit, min_position)
        return Response(CanvasList(canvases=listed, next=cursor))


async def _writer(call: Call) -> EventSpine:
    """The spine to decide on, once the view that will show the decision is known to be routed."""
    await call.view(VIEW)  # 503 before appending (or reading a thread's messages)
    return await call.spine()


async def _list(runner: Runner, prefix: str, after: str, limit: int) -> list[ViewDoc]:
    return await runner.list(BY_MEMBER, prefix=prefix, after=after, limit=limit)


def _message(event: Event) -> Message:
    data = event.data
    return Message(
        id=event.id, version=event.version, position=event.position, author=event.meta.user_id,
        surface_id=event.meta.surface_id, content=data.get("content"), metadata=data.get("metadata"),
        posted_at=msgspec.to_builtins(event.recorded_at),
    )  # fmt: skip


def _written(
    kind: str,
    ident: str,
    written: realtime.Written,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[Written]:
    body = Written(
        kind=kind, id=ident, version=written.version, position=written.position, changes=written.types
    )
    sent = {"X-Spine-Position": str(written.position), "ETag": f'"{written.version}"', **(headers or {})}
    return Response(body, status_code=status_code, headers=sent)

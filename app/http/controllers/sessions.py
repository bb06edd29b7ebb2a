"""`/v1/sessions/{id}`: a user's conversations, appended as events and read from their view."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import JSONBody, PathParameter

from app.http.reads import MinPosition, Problem, caught_up, served_each
from app.http.services import CallDep
from app.personal_spine import open_documents
from domain.append import AppendRequest
from domain.sessions import (
    COLLECTION,
    MESSAGE_ADDED,
    SESSION_PATTERN,
    Role,
    message_event,
    session_prefix,
    stream_of,
)
from projections.catalog import VIEWS

VIEW = VIEWS["sessions"]
SessionId = Annotated[str, PathParameter(description="the session id (one user's)", pattern=SESSION_PATTERN)]
MAX_MESSAGES = 10_000


class NewMessage(msgspec.Struct, frozen=True, kw_only=True):
    role: Role
    content: Any
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    role: str
    content: Any
    metadata: dict[str, Any] | None  # null only with a `problem`
    position: int
    recorded_at: str
    problem: Problem = msgspec.UNSET  # why `content` or `metadata` is null (`app.http.reads.served_each`)


class Session(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    messages: list[Message]


class SessionsController(Controller):
    path = "/v1/sessions"
    tags = ["memory"]

    @post(
        "/{session_id:str}/messages",
        status_code=201,
        summary="Append a message to one of the caller's sessions",
    )
    async def add_message(
        self, session_id: SessionId, data: JSONBody[NewMessage], call: CallDep
    ) -> Response[dict[str, Any]]:
        ctx = call.ctx
        user = ctx.user_id
        assert user is not None
        await call.view(VIEW)  # no view route: 503, nothing appended
        spine = await call.spine()
        event = message_event(user, session_id, data.role, data.content, data.metadata)
        request = AppendRequest(stream=stream_of(user, session_id), events=[event], meta=ctx.event_meta())
        result = await spine.append(ctx.partition, request)
        body = {
            "session_id": session_id,
            "index": result.stream_version - 1,
            "position": result.last_position,
        }
        return Response(
            body,
            status_code=201,
            headers={"X-Spine-Position": str(result.last_position)},
        )

    @get("/{session_id:str}", summary="The caller's session: its messages in order")
    async def read_session(
        self, session_id: SessionId, call: CallDep, min_position: MinPosition = None
    ) -> Response[Session]:
        runner = await caught_up(call, VIEW, min_position)
        assert call.ctx.user_id is not None
        docs = await runner.list(
            COLLECTION,
            prefix=session_prefix(call.ctx.user_id, session_id),
            limit=MAX_MESSAGES,
        )
        opened = await open_documents(
            call.services.spines.keys, call.ctx.tenant_id, [doc.data for doc in docs], event_type=MESSAGE_ADDED,
            field="content", user_of=lambda _: call.ctx.user_id,
        )  # fmt: skip
        messages = served_each([msgspec.convert(data, Message) for data in opened])
        return Response(Session(session_id=session_id, messages=messages))

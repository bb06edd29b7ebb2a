"""`/v1/memory/{key}`: a user's session memory, written as events and read from its view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import JSONBody, PathParameter

from app.http.reads import MinPosition, caught_up, served
from app.http.services import Call, CallDep
from app.personal_spine import open_documents
from domain.append import AppendRequest
from domain.events import NewEvent
from domain.memory import (
    COLLECTION,
    KEY_PATTERN,
    SET,
    deleted_event,
    doc_key,
    is_live,
    set_event,
)
from projections.catalog import VIEWS

VIEW = VIEWS["memory"]
Key = Annotated[str, PathParameter(description="the memory key (one user's)", pattern=KEY_PATTERN)]


class MemoryBody(msgspec.Struct, frozen=True, kw_only=True):
    value: Any
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 24 * 3600)] | None = None


class MemoryValue(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    value: Any
    found: bool
    expires_at: datetime | None


class MemoryController(Controller):
    path = "/v1/memory"
    tags = ["memory"]

    @put("/{key:str}", summary="Set a key of the caller's memory, optionally with a time to live")
    async def set_value(
        self, key: Key, data: JSONBody[MemoryBody], call: CallDep
    ) -> Response[dict[str, Any]]:
        event = set_event(_user(call), key, data.value, data.ttl_seconds, call.services.clock())
        return await _write(call, key, event, {"key": key})

    @get("/{key:str}", summary="Read a key of the caller's memory (found: false when absent or expired)")
    async def get_value(
        self, key: Key, call: CallDep, min_position: MinPosition = None
    ) -> Response[MemoryValue]:
        runner = await caught_up(call, VIEW, min_position)
        doc = await runner.get(COLLECTION, doc_key(_user(call), key))
        answer = MemoryValue(key=key, value=None, found=False, expires_at=None)
        if doc is not None:
            expires_at = msgspec.convert(doc.data["expires_at"], datetime | None)
            if is_live(expires_at, call.services.clock()):
                [data] = await open_documents(
                    call.services.spines.keys, call.ctx.tenant_id, [doc.data], event_type=SET, field="value",
                    user_of=lambda _: call.ctx.user_id,
                )  # fmt: skip
                answer = MemoryValue(key=key, value=data["value"], found=True, expires_at=expires_at)
        return Response(served(answer))

    @delete("/{key:str}", status_code=200, summary="Delete a key of the caller's memory")
    async def delete_value(self, key: Key, call: CallDep) -> Response[dict[str, Any]]:
        return await _write(call, key, deleted_event(_user(call), key), {"key": key, "status": "deleted"})


async def _write(call: Call, key: str, event: NewEvent, body: dict[str, Any]) -> Response[dict[str, Any]]:
    ctx = call.ctx
    await call.view(VIEW)  # no view route: 503, nothing appended
    spine = await call.spine()
    request = AppendRequest(stream=f"memory:{_user(call)}:{key}", events=[event], meta=ctx.event_meta())
    result = await spine.append(ctx.partition, request)
    headers = {"X-Spine-Position": str(result.last_position)}
    return Response({**body, "position": result.last_position}, headers=headers)


def _user(call: Call) -> str:
    assert call.ctx.user_id is not None
    return call.ctx.user_id

"""A request as data (`Call`): what to send, how to read the answer, whether it may be sent again.

Every operation of the clients is a function that builds a `Call`; the async and the sync client
only send it (`_async.py`, `_sync.py`), so the two share everything but their I/O.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from spine_client.errors import unexpected_answer

T = TypeVar("T")
Params = Mapping[str, str | int | float | bool | Sequence[str] | None]
"""Query parameters; those left None are not sent, a sequence repeats the parameter."""

_UNSET: Final[Any] = object()
# Safe to send again whatever happened to the first try (RFC 9110 §9.2.2); a POST is only when it
# carries the client's idempotency key (event ids, usage ids…), which its builder says.
_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_encoder: Final = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


@dataclass(frozen=True, kw_only=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = False

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def call(
    method: str,
    path: str,
    answer: type[T],
    *,
    params: Params | None = None,
    json: Any = _UNSET,
    headers: Mapping[str, str] | None = None,
    idempotent: bool | None = None,
) -> Call[T]:
    """A call whose 2xx answer is decoded into `answer` (a Struct, `dict[str, Any]`, `object`…;
    `httpx.Response`: the answer itself). `json` is sent as the body unless left out."""
    sent = {"Accept": "application/json", **(headers or {})}
    content = None
    if json is not _UNSET:
        content = _encoder.encode(json)
        sent["Content-Type"] = "application/json"
    return Call(
        method=method,
        path=path,
        read=_reader(method, path, answer),
        params={name: value for name, value in (params or {}).items() if value is not None},
        content=content,
        headers=sent,
        idempotent=method in _IDEMPOTENT_METHODS if idempotent is None else idempotent,
    )


def segment(value: str) -> str:
    """One path segment: percent-encoded so that a value can never reach another route."""
    return quote(value, safe="")


def present(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields given a value: None means "not sent", so the server's default holds."""
    return {name: value for name, value in fields.items() if value is not None}


def min_position_header(position: int | None) -> dict[str, str]:
    """`X-Spine-Min-Position`: the read waits (bounded) until its view reflects that write."""
    return {} if position is None else {"X-Spine-Min-Position": str(position)}


def if_match(version: int | None) -> dict[str, str]:
    return {} if version is None else {"If-Match": f'"{version}"'}


def new_event_id() -> str:
    """A UUIDv7 string (RFC 9562 §5.7), as the server makes them: ids sort by creation time."""
    rand = bytearray(os.urandom(10))
    rand[0] = 0x70 | (rand[0] & 0x0F)  # version 7
    rand[2] = 0x80 | (rand[2] & 0x3F)  # RFC 9562 variant
    h = ((time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big").hex() + rand.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _reader(method: str, path: str, answer: type[T]) -> Callable[[httpx.Response], T]:
    if answer is httpx.Response:
        return lambda response: response  # type: ignore[return-value]  # T is httpx.Response
    decoder = _decoders.get(answer)
    if decoder is None:
        decoder = _decoders[answer] = msgspec.json.Decoder(answer)

    def read(response: httpx.Response) -> T:
        try:
            decoded: T = decoder.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise unexpected_answer(response.status_code, f"{method} {path}", exc) from exc
        return decoded

    return read


def context_headers(
    *,
    project_id: str | None,
    surface_id: str | None,
    app_id: str | None,
    env: str | None,
    headers: Mapping[str, str] | None,
    user_agent: str,
) -> dict[str, str]:
    """What every request of a client sends: its context (the tenant comes from the token)."""
    context = {"X-Project-Id": project_id, "X-Surface-Id": surface_id, "X-App-Id": app_id, "X-Env": env}
    return {"User-Agent": user_agent, **(headers or {}), **{k: v for k, v in context.items() if v}}


def with_token(headers: Mapping[str, str], token: str | None) -> dict[str, str]:
    return {**headers, "Authorization": f"Bearer {token}"} if token is not None else dict(headers)

"""A small async client for the Spine HTTP API.

    async with SpineClient("http://127.0.0.1:8080", token=TOKEN, project_id="p1", surface_id="web") as client:
        await client.append("task:42", [{"id": "e1", "type": "task.created", "data": {"goal": "ship"}}])
        page = await client.read(after=0)
        async with contextlib.aclosing(client.follow(after=page.next)) as events:
            async for event in events:
                ...

Problem answers raise `SpineClientError`; a request whose answer never arrived raises
`SpineConnectionError` (`SpineTimeoutError` when the timeout passed first; it may or may not have
been applied: retry it with the same event ids).

Any other route is one `request` (the answer) or `request_json` (its JSON, decoded into a type)
away; a client without `project_id` and `surface_id` reaches the routes that need none (routes,
diagnostics, projections, tenants: the `spine` command line is such a client):

    async with SpineClient("http://127.0.0.1:8080", token=ADMIN_TOKEN) as client:
        routes = await client.request_json("GET", "/v1/routes", params={"tenant_id": "t1"}, type=dict)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import anyio
import httpx
import msgspec

from domain.events import AppendResult, Event, ExpectedVersion, NewEvent, Page

__all__ = ["SpineClient", "SpineClientError", "SpineConnectionError", "SpineTimeoutError"]

DEFAULT_RETRY_SECONDS: Final = 2.0
"""Reconnection delay until the server sends `retry:`."""

_event_decoder: Final = msgspec.json.Decoder(Event)
_append_result_decoder: Final = msgspec.json.Decoder(AppendResult)
_page_decoder: Final = msgspec.json.Decoder(Page)
_encoder: Final = msgspec.json.Encoder()
_T = TypeVar("_T")
Params = Mapping[str, str | int | float | bool | Sequence[str] | None]


class SpineClientError(Exception):
    """The server answered with an error (RFC 9457 problem details with `error_code`)."""

    def __init__(
        self, status: int, error_code: str, message: str, problem: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.problem: Mapping[str, Any] = problem or {}


class SpineConnectionError(Exception):
    """No answer from the server (connect failed, connection dropped, timeout)."""


class SpineTimeoutError(SpineConnectionError):
    """No answer from the server within the client's timeout."""


class SpineClient:
    """Async client of one partition. The tenant comes from the token; project, surface (and
    app, env when given) travel as headers on every request. Without a token (bootstrap) or a
    project and surface (the control plane's routes), those headers are not sent."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        project_id: str | None = None,
        surface_id: str | None = None,
        app_id: str | None = None,
        env: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "User-Agent": "spine-client/0.1",
                **(headers or {}),
                **({"Authorization": f"Bearer {token}"} if token is not None else {}),
                **({"X-Project-Id": project_id} if project_id is not None else {}),
                **({"X-Surface-Id": surface_id} if surface_id is not None else {}),
                **({"X-App-Id": app_id} if app_id else {}),
                **({"X-Env": env} if env else {}),
            },
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_version: ExpectedVersion | None = None,
    ) -> AppendResult:
        """Append `events` to `stream` atomically. Resending the same event ids is idempotent."""
        body: dict[str, Any] = {"stream": stream, "events": list(events)}
        if expected_version is not None:
            body["expected_version"] = expected_version
        response = await self._request(
            "POST",
            "/v1/events",
            content=_encoder.encode(body),
            headers={"Content-Type": "application/json"},
        )
        return _append_result_decoder.decode(response.content)

    async def read(
        self, after: int = 0, limit: int = 100, stream: str | None = None, types: Collection[str] = ()
    ) -> Page:
        """One page of the partition after the cursor `after`; continue from `page.next`."""
        params = _filters(stream, types).merge({"after": after, "limit": limit})
        response = await self._request("GET", "/v1/events", params=params)
        return _page_decoder.decode(response.content)

    async def follow(
        self,
        after: int = 0,
        *,
        stream: str | None = None,
        types: Collection[str] = (),
        reconnect: bool = True,
        idle_timeout: float | None = 60.0,
        max_retry_seconds: float = 30.0,
    ) -> AsyncGenerator[Event, None]:
        """Every event after `after`, live, over Server-Sent Events.

        With `reconnect`, a dropped connection, a connect error or a 5xx answer is retried after
        the server's `retry:` delay (doubling on consecutive failures, capped at
        `max_retry_seconds`), resuming with `Last-Event-ID`: each event is yielded once. Without
        it, a dropped connection raises `SpineConnectionError` and an end of stream ends the
        iteration. A 4xx answer always raises `SpineClientError`. `idle_timeout` should exceed
        the server's heartbeat interval. Close the iterator (`contextlib.aclosing`) when done.
        """
        params = _filters(stream, types)
        timeout = httpx.Timeout(self._timeout, read=idle_timeout)
        last_event_id = str(after)
        retry_seconds = DEFAULT_RETRY_SECONDS
        failures = 0
        while True:
            parser = _SSEParser(last_event_id)
            try:
                async with self._http.stream(
                    "GET",
                    "/v1/events/stream",
                    params=params,
                    headers={"Accept": "text/event-stream", "Last-Event-ID": last_event_id},
                    timeout=timeout,
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        error = _error_of(response)
                        if not reconnect or response.status_code < 500:
                            raise error
                        failures += 1
                    else:
                        _check_event_stream(response)
                        failures = 0
                        async for line in response.aiter_lines():
                            data = parser.feed(line)
                            if parser.retry_ms is not None:
                                retry_seconds = parser.retry_ms / 1000
                            last_event_id = parser.last_event_id
                            if data is not None:
                                yield _event_decoder.decode(data)
                        if not reconnect:
                            return
            except httpx.TransportError as exc:
                if not reconnect:
                    raise SpineConnectionError(f"event stream failed: {exc!r}") from exc
                failures += 1
            delay = retry_seconds * 2 ** min(max(failures - 1, 0), 16)  # bounded: no float overflow
            await anyio.sleep(min(delay, max_retry_seconds))

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Any route: the 2xx answer, else `SpineClientError` (`SpineConnectionError` without one).

        `params` left None are not sent; `json` is sent as the JSON body when not None.
        """
        query = {name: value for name, value in (params or {}).items() if value is not None}
        sent = {"Accept": "application/json", **(headers or {})}
        content = None
        if json is not None:
            content = _encoder.encode(json)
            sent["Content-Type"] = "application/json"
        return await self._request(method, path, params=query, content=content, headers=sent)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        type: type[_T],
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> _T:
        """Any route's JSON answer, decoded into `type` (a Struct, `dict[str, Any]`, `object`…);
        `SpineClientError` `client.unexpected_answer` when it is not of that type."""
        response = await self.request(method, path, params=params, json=json, headers=headers)
        try:
            return msgspec.json.decode(response.content, type=type)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise SpineClientError(
                response.status_code, "client.unexpected_answer", f"{method} {path}: {exc}"
            ) from exc

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise SpineTimeoutError(f"{method} {url} got no answer in time: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise SpineConnectionError(f"{method} {url} failed: {exc!r}") from exc
        if response.is_success:
            return response
        raise _error_of(response)


class _SSEParser:
    """The EventSource line protocol (WHATWG HTML §9.2.6), one line at a time."""

    def __init__(self, last_event_id: str) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._id = last_event_id
        self._data: list[str] = []
        self._first = True

    def feed(self, line: str) -> str | None:
        """Take one line (without its terminator); return an event's data when a blank line ends it."""
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if line == "":
            self.last_event_id = self._id
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return data
        if line.startswith(":"):
            return None  # a comment: heartbeats
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "id" and "\0" not in value:
            self._id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        # `event:` repeats the type the data already carries; unknown fields are ignored.
        return None


def _filters(stream: str | None, types: Collection[str]) -> httpx.QueryParams:
    params: dict[str, str | list[str]] = {"type": list(types)}
    if stream is not None:
        params["stream"] = stream
    return httpx.QueryParams(params)


def _check_event_stream(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "")
    if content_type.split(";")[0].strip() != "text/event-stream":
        raise SpineClientError(
            response.status_code, "client.not_an_event_stream", f"unexpected content type {content_type!r}"
        )


def _error_of(response: httpx.Response) -> SpineClientError:
    try:
        problem = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("error_code"), str):
        message = problem.get("message") or problem.get("detail") or response.reason_phrase
        return SpineClientError(response.status_code, problem["error_code"], str(message), problem)
    text = response.text[:200] or response.reason_phrase
    return SpineClientError(response.status_code, f"http.{response.status_code}", text)

"""`SyncSpineClient`: the sync client (httpx.Client), for code without an event loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

from spine_client import (
    _control,
    _events,
    _flags,
    _lifecycle,
    _objects,
    _pages,
    _realtime,
    _records,
    _tables,
    _views,
)
from spine_client._calls import Call, Params, call, context_headers, with_token
from spine_client._follow import Follower, decode_event, decode_flag_change, flags_stream_call, stream_call
from spine_client._methods import sync_method
from spine_client._objects import SyncObjectStream
from spine_client._retry import NO_RETRY, Attempts, Done, Refresh, RetryPolicy, Wait
from spine_client._version import USER_AGENT
from spine_client.types import Event, FlagChange, StoredObject

T = TypeVar("T")


class SyncSpineClient:
    """Sync client of one partition, or of the control plane: `SpineClient`'s methods, blocking.

    The tenant comes from the token; `project_id`, `surface_id` (and `app_id`, `env` when given)
    travel as headers on every request. Without them the client reaches the routes that need
    none (control plane, routes, diagnostics, projections). `token_provider` is called for a
    token before the first request when no `token` is given, and for a fresh one whenever the
    server answers 401 (once per request; `follow` keeps going with the fresh one).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        token_provider: Callable[[], str] | None = None,
        project_id: str | None = None,
        surface_id: str | None = None,
        app_id: str | None = None,
        env: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008  # frozen: one shared default is fine
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._token = token
        self._provider = token_provider
        self._refreshing = threading.Lock()
        self._retry = retry
        self._timeout = timeout
        sent = context_headers(project_id=project_id, surface_id=surface_id, app_id=app_id, env=env,
                               headers=headers, user_agent=USER_AGENT)  # fmt: skip
        self._http = httpx.Client(base_url=base_url, headers=sent, timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # The event log
    append = sync_method(_events.append)
    read = sync_method(_events.read)
    read_stream = sync_method(_events.read_stream)
    create_stream_ticket = sync_method(_events.create_stream_ticket)

    def follow(
        self,
        after: int = 0,
        *,
        stream: str | None = None,
        types: Collection[str] = (),
        reconnect: bool = True,
        idle_timeout: float | None = 60.0,
        max_retry_seconds: float = 30.0,
    ) -> Iterator[Event]:
        """Every event after the position `after`, in order, each once: catch-up, then live, over SSE.

        With `reconnect` (the default) it resumes for ever (see `spine_client._follow`); without,
        a dropped connection raises `SpineConnectionError` and an ended stream ends the iteration.
        `idle_timeout` (no byte for that long: reconnect) must exceed the server's heartbeat
        interval (15 s). Close the iterator when done (`contextlib.closing`).
        """
        request = stream_call(stream, types)
        follower = Follower(request, decode_event, after, reconnect=reconnect, max_delay=max_retry_seconds,
                            can_refresh=self._refreshable)  # fmt: skip
        return self._follow(follower, idle_timeout)

    def follow_flags(
        self,
        after: int = 0,
        *,
        reconnect: bool = True,
        idle_timeout: float | None = 60.0,
        max_retry_seconds: float = 30.0,
    ) -> Iterator[FlagChange]:
        """Every change of the project's flags after the position `after`, each evaluated for this
        client's context (`FlagChange`: key, value, reason, version, deleted, position), in order,
        each once: catch-up, then live. It resumes as `follow` does, with the same parameters.
        """
        follower = Follower(flags_stream_call(), decode_flag_change, after, reconnect=reconnect,
                            max_delay=max_retry_seconds, can_refresh=self._refreshable)  # fmt: skip
        return self._follow(follower, idle_timeout)

    def _follow(self, follower: Follower[T], idle_timeout: float | None) -> Iterator[T]:
        """The one reconnect loop of `follow` and `follow_flags` (the decisions: `Follower`)."""
        request = follower.request
        timeout = httpx.Timeout(self._timeout, read=idle_timeout)
        while True:
            token = self._current_token()
            then: Wait | Refresh | None
            try:
                headers = with_token({**request.headers, **follower.headers()}, token)
                with self._http.stream(
                    "GET", request.path, params=request.params, headers=headers, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        response.read()
                    opened = follower.opened(response)
                    if isinstance(opened, Done):
                        for line in response.iter_lines():
                            item = follower.line(line)
                            if item is not None:
                                yield item
                        then = follower.ended()
                    else:
                        then = opened
            except httpx.TransportError as exc:
                then = follower.failed(exc)
            if then is None:
                return
            self._take(then, token)

    # Any route
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Any route: its 2xx answer, else `SpineClientError` (`SpineConnectionError` without one).
        `params` left None are not sent; `json` is sent as the body when not None."""
        body = {} if json is None else {"json": json}
        return self._run(call(method, path, httpx.Response, params=params, headers=headers, **body))

    def request_json(
        self,
        method: str,
        path: str,
        *,
        type: type[T],
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> T:
        """Any route's JSON answer decoded into `type` (a Struct, `dict[str, Any]`, `object`…);
        `SpineClientError` `client.unexpected_answer` when it is not of that type."""
        body = {} if json is None else {"json": json}
        return self._run(call(method, path, type, params=params, headers=headers, **body))

    # Views
    set_memory = sync_method(_views.set_memory)
    get_memory = sync_method(_views.get_memory)
    delete_memory = sync_method(_views.delete_memory)
    add_message = sync_method(_views.add_message)
    get_session = sync_method(_views.get_session)
    write_entry = sync_method(_views.write_entry)
    get_entry = sync_method(_views.get_entry)
    get_board = sync_method(_views.get_board)
    record_usage = sync_method(_records.record_usage)
    set_budget_limit = sync_method(_records.set_budget_limit)
    get_budget = sync_method(_records.get_budget)
    get_budget_ledger = sync_method(_records.get_budget_ledger)
    add_audit_record = sync_method(_records.add_audit_record)
    list_audit_records = sync_method(_records.list_audit_records)
    get_audit_record = sync_method(_records.get_audit_record)
    track = sync_method(_records.track)
    track_batch = sync_method(_records.track_batch)
    list_analytics_events = sync_method(_records.list_analytics_events)
    count_analytics_events = sync_method(_records.count_analytics_events)
    put_seo = sync_method(_views.put_seo)
    get_seo = sync_method(_views.get_seo)
    list_seo_pages = sync_method(_views.list_seo_pages)
    delete_seo = sync_method(_views.delete_seo)
    save_page_draft = sync_method(_pages.save_page_draft)
    publish_page_content = sync_method(_pages.publish_page_content)
    publish_page = sync_method(_pages.publish_page)
    rollback_page = sync_method(_pages.rollback_page)
    get_page_content = sync_method(_pages.get_page_content)
    get_page_draft = sync_method(_pages.get_page_draft)
    list_pages = sync_method(_pages.list_pages)
    list_page_versions = sync_method(_pages.list_page_versions)
    get_page_version = sync_method(_pages.get_page_version)
    put_flag = sync_method(_flags.put_flag)
    get_flag = sync_method(_flags.get_flag)
    delete_flag = sync_method(_flags.delete_flag)
    list_flags = sync_method(_flags.list_flags)
    flag_history = sync_method(_flags.flag_history)
    evaluate_flags = sync_method(_flags.evaluate_flags)
    define_kpi = sync_method(_views.define_kpi)
    get_kpi = sync_method(_views.get_kpi)
    list_kpis = sync_method(_views.list_kpis)
    record_kpi_value = sync_method(_views.record_kpi_value)
    record_kpi_values = sync_method(_views.record_kpi_values)
    kpi_series = sync_method(_views.kpi_series)
    create_save = sync_method(_views.create_save)
    update_save = sync_method(_views.update_save)
    delete_save = sync_method(_views.delete_save)
    get_save = sync_method(_views.get_save)
    list_saves = sync_method(_views.list_saves)
    list_save_versions = sync_method(_views.list_save_versions)
    get_save_version = sync_method(_views.get_save_version)
    take_snapshot = sync_method(_views.take_snapshot)
    get_latest_snapshot = sync_method(_views.get_latest_snapshot)
    list_snapshots = sync_method(_views.list_snapshots)
    define_table = sync_method(_tables.define_table)
    get_table = sync_method(_tables.get_table)
    list_tables = sync_method(_tables.list_tables)
    put_row = sync_method(_tables.put_row)
    get_row = sync_method(_tables.get_row)
    delete_row = sync_method(_tables.delete_row)
    list_rows = sync_method(_tables.list_rows)
    row_versions = sync_method(_tables.row_versions)
    get_row_version = sync_method(_tables.get_row_version)
    get_object = sync_method(_objects.get_object)
    head_object = sync_method(_objects.head_object)
    delete_object = sync_method(_objects.delete_object)
    list_objects = sync_method(_objects.list_objects)
    upload_url = sync_method(_objects.upload_url)
    complete_upload = sync_method(_objects.complete_upload)
    download_url = sync_method(_objects.download_url)
    create_thread = sync_method(_realtime.create_thread)
    get_thread = sync_method(_realtime.get_thread)
    list_threads = sync_method(_realtime.list_threads)
    update_thread = sync_method(_realtime.update_thread)
    post_message = sync_method(_realtime.post_message)
    list_messages = sync_method(_realtime.list_messages)
    set_retention = sync_method(_lifecycle.set_retention)
    get_retention = sync_method(_lifecycle.get_retention)
    run_retention = sync_method(_lifecycle.run_retention)

    # Control plane and operators
    bootstrap = sync_method(_control.bootstrap)
    list_modes = sync_method(_control.list_modes)
    create_tenant = sync_method(_control.create_tenant)
    get_tenant = sync_method(_control.get_tenant)
    create_project = sync_method(_control.create_project)
    create_surface = sync_method(_control.create_surface)
    create_app = sync_method(_control.create_app)
    put_app = sync_method(_control.put_app)
    set_member = sync_method(_control.set_member)
    mint_token = sync_method(_control.mint_token)
    set_route = sync_method(_control.set_route)
    list_routes = sync_method(_control.list_routes)
    delete_route = sync_method(_control.delete_route)
    route_history = sync_method(_control.route_history)
    set_limits = sync_method(_control.set_limits)
    erase_user_data = sync_method(_control.erase_user_data)
    get_limits = sync_method(_control.get_limits)
    diagnostics = sync_method(_control.diagnostics)
    projections = sync_method(_control.projections)
    rebuild_projection = sync_method(_control.rebuild_projection)
    snapshot_projection = sync_method(_control.snapshot_projection)

    def put_object(
        self,
        key: str,
        data: bytes | IO[bytes] | Iterable[bytes],
        *,
        content_type: str | None = None,
        expected_version: int | None = None,
        create_only: bool = False,
    ) -> StoredObject:
        """Store `data` as object `key`: bytes (retried as any PUT), or a binary file or an
        iterator of chunks, streamed as it is read (sent once: a stream cannot be sent again).
        `expected_version` makes it a compare-and-set, `create_only` refuses an existing key."""
        put = _objects.put_object(
            key, content_type=content_type, expected_version=expected_version, create_only=create_only
        )
        if isinstance(data, bytes | bytearray | memoryview):
            return self._run(replace(put, content=bytes(data)))
        return self._run_once(put, data)

    @contextmanager
    def stream_object(
        self, key: str, *, first: int | None = None, last: int | None = None, min_position: int | None = None
    ) -> Iterator[SyncObjectStream]:
        """`with client.stream_object(key) as found:` its head, and its bytes as they come
        (`for chunk in found.chunks`); a range with `first`..`last` (inclusive)."""
        get = _objects.get_object(key, first=first, last=last, min_position=min_position)
        attempts = Attempts(get, NO_RETRY, can_refresh=False)
        token = self._current_token()
        try:
            with self._http.stream(get.method, get.path, headers=with_token(get.headers, token)) as response:
                if not response.is_success:
                    response.read()
                    attempts.answered(response)  # raises the problem
                yield SyncObjectStream(head=_objects.head_of(key, response), chunks=response.iter_bytes())
        except httpx.TransportError as exc:
            attempts.failed(exc)  # raises SpineConnectionError
            raise

    def _run_once(self, call: Call[T], content: IO[bytes] | Iterable[bytes]) -> T:
        """`call` with a streamed body, sent once: whatever happens, it is not sent again."""
        attempts = Attempts(call, NO_RETRY, can_refresh=False)
        token = self._current_token()
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                content=content,
                headers=with_token(call.headers, token),
            )
        except httpx.TransportError as exc:
            attempts.failed(exc)  # raises SpineConnectionError
            raise
        step = attempts.answered(response)  # the answer, or it raises
        assert isinstance(step, Done)
        return step.value

    def _run(self, call: Call[T]) -> T:
        attempts = Attempts(call, self._retry, can_refresh=self._refreshable)
        while True:
            token = self._current_token()
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.content,
                    headers=with_token(call.headers, token),
                )
            except httpx.TransportError as exc:
                step = attempts.failed(exc)
            else:
                step = attempts.answered(response)
            if isinstance(step, Done):
                return step.value
            self._take(step, token)

    def _take(self, step: Wait | Refresh, token: str | None) -> None:
        if isinstance(step, Refresh):
            self._refresh(token)
        else:
            time.sleep(step.seconds)

    @property
    def _refreshable(self) -> bool:
        return self._provider is not None

    def _current_token(self) -> str | None:
        if self._token is None and self._provider is not None:
            self._refresh(None)
        return self._token

    def _refresh(self, refused: str | None) -> None:
        """A fresh token from the provider, unless another request got one since `refused` was sent."""
        assert self._provider is not None
        with self._refreshing:
            if self._token == refused:
                self._token = self._provider()

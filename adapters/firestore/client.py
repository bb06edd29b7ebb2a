"""What the Firestore spine and view store share: the client, route config, ids, retries, errors.

Route `config`: `{"project", "database"?, "emulator_host"?}`. Without `emulator_host` the client
uses Google's default credentials; with it, it talks plain gRPC to that emulator and sends no
credentials (the same as `FIRESTORE_EMULATOR_HOST`, but per route rather than per process).

Transient failures (contention that outlived the SDK's own retries, `UNAVAILABLE`,
`DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` throttling, `INTERNAL`, a timed-out attempt) are retried
with jittered exponential backoff for a bounded time, then raised as `BackendUnavailable` (503,
`Retry-After`). Messages name the failure's class, never a credential or a document's content.

Timeouts (`domain.timeouts`, from a route's config): a call, its attempts and their backoff
included, ends within `request_timeout_seconds`. The gRPC channel gives a connection attempt
`connect_timeout_seconds` and, after losing one, tries again at least that often: gRPC's own
reconnect backoff grows to two minutes, which would keep a recovered backend unreachable (and
its circuit breaker's probes failing) long after it is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as google_errors
from google.auth import exceptions as auth_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore import AsyncClient

from domain.errors import BackendUnavailable, InvalidRequest
from domain.timeouts import Timeouts, timeouts_of

log = logging.getLogger(f"spine.{__name__}")

T = TypeVar("T")

DEFAULT_DATABASE = "(default)"
# What one commit request may carry: Firestore takes 10 MiB; the emulator's gRPC server refuses
# any message over 4 MiB (RESOURCE_EXHAUSTED), so against it transactions stay below that.
COMMIT_BYTES = 9_000_000
EMULATOR_COMMIT_BYTES = 3_900_000


def commit_bytes(emulator_host: str | None) -> int:
    return COMMIT_BYTES if emulator_host is None else EMULATOR_COMMIT_BYTES


# Retried: nothing was decided by the server, or it asked us to slow down; contention (ABORTED)
# that outlasted the SDK's own attempts included.
TRANSIENT: tuple[type[BaseException], ...] = (
    google_errors.Aborted,
    google_errors.ServiceUnavailable,
    google_errors.DeadlineExceeded,
    google_errors.ResourceExhausted,
    google_errors.InternalServerError,
    google_errors.Unknown,
    google_errors.RetryError,
    TimeoutError,
    grpc.RpcError,
    OSError,
)
_DOC_ID_OK = re.compile(r"^[A-Za-z0-9_.:~@+=-]{1,500}$")


def firestore_config(config: Mapping[str, object], kind: str) -> dict[str, str | None]:
    """`project`, `database` and `emulator_host` of a route's config, checked."""
    project = config.get("project")
    database = config.get("database", DEFAULT_DATABASE)
    emulator_host = config.get("emulator_host")
    if not isinstance(project, str) or not project:
        raise BackendUnavailable(kind, "a firestore route needs a 'project' in its config")
    if not isinstance(database, str) or not database:
        raise BackendUnavailable(kind, "a firestore route's 'database' must be a non-empty string")
    if emulator_host is not None and not isinstance(emulator_host, str):
        raise BackendUnavailable(kind, "a firestore route's 'emulator_host' must be 'HOST:PORT'")
    return {"project": project, "database": database, "emulator_host": emulator_host}


def firestore_timeouts(config: Mapping[str, object], kind: str) -> Timeouts:
    """The route's `connect_timeout_seconds` and `request_timeout_seconds`, checked."""
    try:
        return timeouts_of(config)
    except InvalidRequest as exc:
        raise BackendUnavailable(kind, f"a firestore route's {exc.message}") from None


class _Client(AsyncClient):
    """`AsyncClient` whose gRPC channel connects within `connect_seconds` (see the module docstring).

    The SDK builds its channel with fixed options in `_firestore_api_helper`; this is that method
    with our options added, for the emulator's insecure channel and for Google's alike.
    """

    connect_seconds: float = Timeouts().connect

    def _firestore_api_helper(self, transport: Any, client_class: Any, client_module: Any) -> Any:
        if self._firestore_api_internal is None:
            if self._emulator_host is not None:
                # what the SDK's `_emulator_channel` sends: the emulator's owner token
                options = [("Authorization", "Bearer owner"), *_channel_options(self.connect_seconds)]
                channel = grpc.aio.insecure_channel(self._emulator_host, options=options)
            else:
                channel = transport.create_channel(
                    self._target,
                    credentials=self._credentials,
                    options=[("grpc.keepalive_time_ms", 30000), *_channel_options(self.connect_seconds)],
                )
            self._transport = transport(host=self._target, channel=channel)
            self._firestore_api_internal = client_class(
                transport=self._transport, client_options=self._client_options
            )
            client_module._client_info = self._client_info
        return self._firestore_api_internal


def _channel_options(connect_seconds: float) -> list[tuple[str, Any]]:
    ms = max(100, round(connect_seconds * 1000))
    return [
        ("grpc.max_send_message_length", -1),  # as the SDK's own: Firestore bounds messages itself
        ("grpc.max_receive_message_length", -1),
        # gRPC's connect timeout for one attempt is the larger of this and the backoff
        ("grpc.min_reconnect_backoff_ms", ms),
        ("grpc.initial_reconnect_backoff_ms", min(ms, 1000)),
        ("grpc.max_reconnect_backoff_ms", ms),
    ]


def open_client(
    project: str, database: str, emulator_host: str | None, kind: str, *, connect_seconds: float | None = None
) -> AsyncClient:
    """A client bound to the running event loop's gRPC; close it with `close_client`."""
    with translate_errors(kind, "could not be opened"):
        if emulator_host is None:
            client = _Client(project=project, database=database)
        else:
            client = _Client(project=project, database=database, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        if connect_seconds is not None:
            client.connect_seconds = connect_seconds
        if emulator_host is None:
            return client
        # What FIRESTORE_EMULATOR_HOST does when the client is built (an insecure channel and the
        # emulator's owner token), chosen per route instead of per process. Read before the first
        # call, so setting it here, before any call, is enough.
        client._emulator_host = emulator_host
        return client


async def close_client(client: AsyncClient) -> None:
    api = client._firestore_api_internal  # created lazily: None when the client made no call
    if api is not None:
        await api.transport.close()


def doc_id(text: str) -> str:
    """A valid, stable document or collection id for `text` ('/' becomes '~'; odd ones hashed)."""
    candidate = text.replace("/", "~")
    if (
        _DOC_ID_OK.match(candidate)
        and candidate not in {".", ".."}
        and not (candidate.startswith("__") and candidate.endswith("__"))
    ):
        return candidate
    return "h~" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@contextmanager
def translate_errors(kind: str, doing: str = "is unavailable") -> Iterator[None]:
    """Google API and auth errors → `BackendUnavailable`; the message names the class only.

    The SDK's transaction runner may raise a `ValueError` of its own (contention that outlasted
    its attempts; a rollback after a failed commit) with the Google error as its cause or
    context: those are backend errors too. Anything else is a bug of ours and passes.
    """
    try:
        yield
    except Exception as exc:
        cause = backend_error(exc)
        if cause is None:
            raise
        log.warning("firestore error", extra={"kind": kind, "error": type(cause).__name__})
        raise BackendUnavailable(
            kind, f"the firestore {_what(kind)} {doing} ({type(cause).__name__})"
        ) from exc


def _what(kind: str) -> str:
    return "event spine" if kind == "event_spine" else "view store"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it or was being handled when it was raised."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def backend_error(exc: BaseException) -> BaseException | None:
    """The Google API, auth or timeout error behind `exc`, if there is one."""
    backend = (google_errors.GoogleAPIError, auth_errors.GoogleAuthError, grpc.RpcError, OSError)
    return next((e for e in _chain(exc) if isinstance(e, backend)), None)


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: anything in the chain is transient (a rollback error hides the commit's)."""
    return any(isinstance(e, TRANSIENT) for e in _chain(exc))


def is_contention(exc: BaseException) -> bool:
    """The SDK's transaction runner gives up on ABORTED with a ValueError caused by it."""
    return isinstance(exc, ValueError) and isinstance(exc.__cause__, google_errors.Aborted)


class Retrying:
    """Runs an attempt until it succeeds, a non-transient error, or `seconds` have passed.

    Each attempt gets at most `attempt_seconds`; between attempts the delay doubles from 50 ms
    (with full jitter) up to 2 s. The last transient error becomes `BackendUnavailable`.
    """

    def __init__(self, kind: str, *, seconds: float, attempt_seconds: float) -> None:
        self.kind = kind
        self.seconds = seconds
        self.attempt_seconds = attempt_seconds

    async def run(
        self, attempt: Callable[[], Awaitable[T]], on_failure: Callable[[BaseException], None] | None = None
    ) -> T:
        deadline = time.monotonic() + self.seconds
        delay = 0.05
        while True:
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(0.1, min(self.attempt_seconds, remaining))):
                    return await attempt()
            except Exception as exc:
                if on_failure is not None:
                    on_failure(exc)
                if not is_transient(exc) or time.monotonic() + delay >= deadline:
                    with translate_errors(self.kind):
                        raise
                    raise  # not a backend error: a bug of ours, let it show
                log.info("firestore retry", extra={"kind": self.kind, "error": type(exc).__name__})
            await anyio.sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, 2.0)

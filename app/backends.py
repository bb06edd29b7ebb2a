"""Opening the backend a route (or `SPINE_SYSTEM_URL`) names, for either port: one place for both.

Each distinct backend is opened once and kept for the life of the process (its `stack`), so the
system spine, a route naming the same store, and every request resolving to it share one adapter:
one SQLite writer per file, one client per table or container.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import msgspec

from adapters.azure_blob.objects import AzureBlobObjectStore, azure_blob_options
from adapters.cosmos.client import cosmos_options
from adapters.cosmos.spine import DEFAULT_CONTAINER as COSMOS_EVENTS
from adapters.cosmos.spine import CosmosSpine
from adapters.cosmos.views import DEFAULT_CONTAINER as COSMOS_VIEWS
from adapters.cosmos.views import CosmosViewStore
from adapters.dynamodb.spine import DynamoDBSpine
from adapters.dynamodb.table import dynamodb_options
from adapters.dynamodb.views import DynamoDBViewStore
from adapters.filesystem.objects import FilesystemObjectStore
from adapters.firestore.spine import FirestoreSpine
from adapters.firestore.views import FirestoreViewStore
from adapters.memory.spine import MemorySpine
from adapters.memory.views import MemoryViewStore
from adapters.redis.rate_limiter import DEFAULT_PREFIX, RedisRateLimiter
from adapters.s3.objects import S3ObjectStore, s3_options
from adapters.secret_resolver import ChainSecretResolver
from adapters.sqlite.file import Synchronous
from adapters.sqlite.spine import SQLiteSpine
from adapters.sqlite.views import SQLiteViewStore
from app.breakers import Guard, GuardedViewStore
from app.http.metrics import Metrics
from app.metered_spine import MeteredSpine
from app.settings import Settings
from domain.backend_url import Backend
from domain.blobs import BlobHead, ByteRange, SignedRequest, StoredBlob
from domain.circuit_breaker import BreakerPolicy, BreakerStatus, CircuitBreaker
from domain.errors import BackendUnavailable, InvalidRequest, SpineError
from domain.ports import EventSpine, Notifier, ObjectStore, RateLimiter, SecretResolver, ViewStore
from domain.rate_limits import Limit, Verdict
from domain.routing import EMBEDDED
from domain.secrets import SecretFiles
from domain.timeouts import timeouts_of

EVENT_SPINE = "event_spine"
RATE_LIMIT = "rate_limit"
OBJECT_STORE = "object_store"
_SPINE, _VIEWS, _LIMITER = "spine", "views", "limiter"  # the ports a backend may be opened as
_OBJECTS = "objects"
T = TypeVar("T")


def secrets_for(settings: Settings) -> SecretResolver:
    # `secret://env/…` only where the environment is the developer's own (lab, or env dev)
    return ChainSecretResolver(
        allow_env=settings.deployment == "lab" or settings.default_env == "dev", files=secret_files(settings)
    )


def secret_files(settings: Settings) -> SecretFiles:
    """Where routes' secret files may be, as absolute paths: the resolver and route writes agree."""
    root = None if settings.secrets_dir is None else os.path.abspath(settings.secrets_dir)
    # `data_dir/secrets` holds the keys a lab deployment makes for itself (`app.lab_secrets`)
    return SecretFiles(root=root, own=os.path.abspath(settings.data_dir / "secrets"))


class Backends:
    """Each backend opened once, behind its circuit breaker (`app.breakers`).

    Opening is a call like any other: it goes through the backend's breaker, so a backend that
    cannot be opened (unreachable, a key that is no key) fails fast once its breaker is open.
    Concurrent requests for a backend that is being opened wait for that one attempt instead of
    each making their own, and never wait on another backend's opening.
    """

    def __init__(
        self,
        *,
        stack: AsyncExitStack,
        notifier: Notifier,
        metrics: Metrics,
        secrets: SecretResolver,
        data_dir: Path,
        synchronous: Synchronous,
        breakers: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stack = stack
        self._notifier = notifier
        self._metrics = metrics
        self._secrets = secrets
        self._data_dir = data_dir
        self._synchronous = synchronous
        self._policy = breakers or BreakerPolicy()
        self._clock = clock
        self._spines: dict[bytes, MeteredSpine] = {}
        self._views: dict[bytes, GuardedViewStore] = {}
        self._limiters: dict[bytes, GuardedRateLimiter] = {}
        self._objects: dict[bytes, GuardedObjectStore] = {}
        self._guards: dict[tuple[str, bytes], Guard] = {}
        self._opening: dict[tuple[str, bytes], asyncio.Future[Any]] = {}

    async def spine(self, backend: Backend) -> EventSpine:
        """The event spine `backend` names, opened on first use."""
        key = self._key(backend)
        spine = self._spines.get(key)
        if spine is None:
            guard = self._guard(_SPINE, key, EVENT_SPINE, backend)

            async def opened() -> MeteredSpine:
                inner = await guard.call(lambda: _config_checked(EVENT_SPINE, self._open_spine(backend)))
                return MeteredSpine(inner, self._metrics, guard)

            spine = self._spines[key] = await self._once(_SPINE, key, opened, self._spines)
        return spine

    async def views(self, backend: Backend, kind: str) -> ViewStore:
        """The view store `backend` names (for resource `kind`, named in its errors). While its
        breaker is open this refuses at once, so a write is refused before anything is appended."""
        key = self._key(backend)
        store = self._views.get(key)
        if store is None:
            guard = self._guard(_VIEWS, key, kind, backend)

            async def opened() -> GuardedViewStore:
                inner = await guard.call(lambda: _config_checked(kind, self._open_views(backend, kind)))
                return GuardedViewStore(inner, guard)

            store = self._views[key] = await self._once(_VIEWS, key, opened, self._views)
        store.guard.check(kind)
        return store

    async def rate_limiter(self, backend: Backend) -> RateLimiter:
        """The rate limiter `backend` names, opened on first use, behind its breaker: while the
        breaker is open it refuses at once, so a dead Redis costs no request its timeout."""
        key = self._key(backend)
        limiter = self._limiters.get(key)
        if limiter is None:
            guard = self._guard(_LIMITER, key, RATE_LIMIT, backend)

            async def opened() -> GuardedRateLimiter:
                inner = await guard.call(lambda: _config_checked(RATE_LIMIT, self._open_limiter(backend)))
                return GuardedRateLimiter(inner, guard)

            limiter = self._limiters[key] = await self._once(_LIMITER, key, opened, self._limiters)
        limiter.guard.check(RATE_LIMIT)
        return limiter

    async def _open_limiter(self, backend: Backend) -> RateLimiter:
        config = backend.config
        if backend.backend_type != "redis":
            raise BackendUnavailable(RATE_LIMIT, f"{backend.backend_type} does not serve rate limits")
        password = config.get("password")
        limiter = RedisRateLimiter(
            str(config["url"]),
            password=None if password is None else await self._secrets.resolve(str(password)),
            prefix=str(config.get("prefix", DEFAULT_PREFIX)),
            timeouts=timeouts_of(config),
        )
        return await self._stack.enter_async_context(limiter)

    async def objects(self, backend: Backend) -> ObjectStore:
        """The object store `backend` names, opened on first use, behind its breaker (see
        `GuardedObjectStore` for what a call is when the bytes stream)."""
        key = self._key(backend)
        store = self._objects.get(key)
        if store is None:
            guard = self._guard(_OBJECTS, key, OBJECT_STORE, backend)

            async def opened() -> GuardedObjectStore:
                inner = await guard.call(lambda: _config_checked(OBJECT_STORE, self._open_objects(backend)))
                return GuardedObjectStore(inner, guard)

            store = self._objects[key] = await self._once(_OBJECTS, key, opened, self._objects)
        store.guard.check(OBJECT_STORE)
        return store

    async def _open_objects(self, backend: Backend) -> ObjectStore:
        config = backend.config
        match backend.backend_type:
            case "s3":
                credentials: dict[str, Any] = {
                    name: await self._secrets.resolve(str(config[name]))
                    for name in ("access_key_id", "secret_access_key")
                    if name in config
                }  # none: the default AWS chain
                s3 = S3ObjectStore(**s3_options(config), **credentials)
                return await self._stack.enter_async_context(s3)
            case "azure_blob":
                if "key" not in config:
                    # DefaultAzureCredential needs azure-identity, which this build does not ship
                    raise InvalidRequest(
                        "an azure_blob route needs 'key' (a secret:// reference to the account key)"
                    )
                key = await self._secrets.resolve(str(config["key"]))
                azure = AzureBlobObjectStore(account_key=key, **azure_blob_options(config))
                return await self._stack.enter_async_context(azure)
            case "filesystem":
                root = self._path(backend)
                if not root.is_relative_to(self._data_dir.resolve()):
                    raise BackendUnavailable(
                        OBJECT_STORE, "the filesystem object store's path must be inside the data directory"
                    )
                return await self._stack.enter_async_context(FilesystemObjectStore(root))
            case other:
                raise BackendUnavailable(OBJECT_STORE, f"{other} does not serve the object store")

    def breaker(
        self, backend: Backend, *, views: bool = False, kind: str = EVENT_SPINE
    ) -> BreakerStatus | None:
        """The breaker of the spine (or view store, rate limiter or object store: `kind`) `backend`
        names, without calling it; None when it was never opened or has none (embedded stores)."""
        port = {RATE_LIMIT: _LIMITER, OBJECT_STORE: _OBJECTS}.get(kind, _VIEWS if views else _SPINE)
        guard = self._guards.get((port, self._key(backend)))
        return None if guard is None else guard.status()

    def _guard(self, port: str, key: bytes, kind: str, backend: Backend) -> Guard:
        guard = self._guards.get((port, key))
        if guard is None:
            embedded = backend.backend_type in EMBEDDED  # no network to wait on: see `breakers`
            breaker = None if embedded else CircuitBreaker(self._policy, self._clock)
            guard = self._guards[(port, key)] = Guard(kind, backend.backend_type, breaker)
        return guard

    async def _once(
        self, port: str, key: bytes, open_: Callable[[], Awaitable[T]], opened: Mapping[bytes, T]
    ) -> T:
        """`open_()` run once for every caller that asks while it runs, in a task of its own: a
        caller that gives up (a client gone) cancels neither the opening nor the others' wait.

        asyncio, not anyio: the opening outlives the request that started it, and anyio has no
        detached task (a task group here would tie it to one caller's scope)."""
        if key in opened:
            return opened[key]
        future = self._opening.get((port, key))
        if future is None:
            future = self._opening[(port, key)] = asyncio.ensure_future(open_())
            future.add_done_callback(lambda done: self._opened(port, key, done))
        return cast(T, await asyncio.shield(future))

    def _opened(self, port: str, key: bytes, done: asyncio.Future[Any]) -> None:
        self._opening.pop((port, key), None)
        if not done.cancelled():
            done.exception()  # retrieved: a failure nobody waited for any more is not logged as lost

    def _key(self, backend: Backend) -> bytes:
        config: dict[str, Any] = dict(backend.config)
        if backend.backend_type in (
            "sqlite",
            "filesystem",
        ):  # one file or tree, however a route spells its path
            config["path"] = str(self._path(backend))
        return msgspec.json.encode((backend.backend_type, config), order="sorted")

    def _path(self, backend: Backend) -> Path:
        return (self._data_dir / str(backend.config["path"])).resolve()

    async def _open_spine(self, backend: Backend) -> EventSpine:
        config = backend.config
        match backend.backend_type:
            case "sqlite":
                sqlite = SQLiteSpine(
                    self._path(backend),
                    notifier=self._notifier,
                    synchronous=self._synchronous,
                    on_commit=self._metrics.on_commit,
                )
                return await self._stack.enter_async_context(sqlite)
            case "memory":
                return MemorySpine(self._notifier)
            case "dynamodb":
                dynamodb = DynamoDBSpine(notifier=self._notifier, **dynamodb_options(config))
                return await self._stack.enter_async_context(dynamodb)
            case "cosmos":
                key = await self._secrets.resolve(str(config["key"]))
                cosmos = CosmosSpine(
                    notifier=self._notifier,
                    on_commit=self._metrics.on_commit,
                    **cosmos_options(config, key, container=COSMOS_EVENTS),
                )
                return await self._stack.enter_async_context(cosmos)
            case "firestore":
                firestore = FirestoreSpine.from_config(
                    config, notifier=self._notifier, on_commit=self._metrics.on_commit
                )
                return await self._stack.enter_async_context(firestore)
            case other:
                raise BackendUnavailable(
                    EVENT_SPINE, f"the {other} event spine is not available in this build"
                )

    async def _open_views(self, backend: Backend, kind: str) -> ViewStore:
        config = backend.config
        match backend.backend_type:
            case "sqlite":
                store = SQLiteViewStore(self._path(backend), synchronous=self._synchronous)
                return await self._stack.enter_async_context(store)
            case "memory":
                return MemoryViewStore()
            case "dynamodb":
                return await self._stack.enter_async_context(DynamoDBViewStore(**dynamodb_options(config)))
            case "cosmos":
                key = await self._secrets.resolve(str(config["key"]))
                # A container of their own: a route may name the one its event spine uses.
                options = cosmos_options(config, key, container=COSMOS_VIEWS)
                if "container" in config:
                    options["container"] += "-views"
                return await self._stack.enter_async_context(CosmosViewStore(**options))
            case "firestore":
                return await self._stack.enter_async_context(
                    FirestoreViewStore.from_config(config, kind=kind)
                )
            case other:
                raise BackendUnavailable(kind, f"the {other} view store is not available in this build")


class GuardedRateLimiter:
    """A `RateLimiter` whose every call goes through its backend's `Guard`."""

    def __init__(self, inner: RateLimiter, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard

    async def admit(self, key: str, limit: Limit) -> Verdict:
        return await self.guard.call(lambda: self.inner.admit(key, limit))

    async def probe(self) -> None:
        await self.guard.call(self.inner.probe)


class GuardedObjectStore:
    """An `ObjectStore` whose every call goes through its backend's `Guard`.

    A transfer is not one call: the breaker would learn nothing until a 50 MB stream ended, and a
    per-call budget would have to cover the whole object. So a read is its opening plus one call
    per chunk (each translated, each telling the breaker the backend answered or not; once the
    breaker opens, a stream in progress ends with `BackendUnavailable` too), and a put
    is one call whose adapter bounds every request it makes (a part, a block) by the route's
    timeouts. A put's chunks come from the client: what they raise (the client went away) is the
    client's failure, passed through as it is, never counted against the backend.
    """

    def __init__(self, inner: ObjectStore, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard

    async def put(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str, max_bytes: int
    ) -> StoredBlob:
        try:
            return await self.guard.call(
                lambda: self.inner.put(name, _sourced(chunks), content_type=content_type, max_bytes=max_bytes)
            )
        except _SourceFailed as failed:
            raise failed.error from failed.error.__cause__

    async def read(self, name: str, byte_range: ByteRange | None = None) -> AsyncIterator[bytes]:
        chunks = await self.guard.call(lambda: self.inner.read(name, byte_range))
        return self._guarded(chunks)

    async def head(self, name: str) -> BlobHead | None:
        return await self.guard.call(lambda: self.inner.head(name))

    async def delete(self, name: str) -> None:
        await self.guard.call(lambda: self.inner.delete(name))

    async def signed_upload(
        self, name: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> SignedRequest | None:
        return await self.guard.call(
            lambda: self.inner.signed_upload(
                name, content_type=content_type, max_bytes=max_bytes, expires_in=expires_in
            )
        )

    async def signed_download(self, name: str, *, expires_in: int) -> SignedRequest | None:
        return await self.guard.call(lambda: self.inner.signed_download(name, expires_in=expires_in))

    async def probe(self) -> None:
        await self.guard.call(self.inner.probe)

    async def _guarded(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            while (chunk := await self.guard.call(lambda: anext(chunks, None))) is not None:
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)  # the response or file behind the chunks
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


class _SourceFailed(SpineError):
    """What a put's chunks raised, carried through the `Guard` as an answer (not a backend failure)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"the upload's source failed ({type(error).__name__})")
        self.error = error


async def _sourced(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    iterator = aiter(chunks)
    while True:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except SpineError:
            raise  # already an answer the service gives as it is (a body too large, a timeout)
        except Exception as exc:
            raise _SourceFailed(exc) from exc
        yield chunk


async def _config_checked(kind: str, opening: Awaitable[T]) -> T:
    """A route whose config an adapter refuses (a timeout that is no number of seconds) names a
    backend that cannot be opened: 503 for the requests routed to it, not their 422."""
    try:
        return await opening
    except InvalidRequest as exc:
        raise BackendUnavailable(kind, f"the route's config is invalid: {exc.message}") from None


def lab_views_of(system: Backend) -> Backend:
    """Where lab views live beside a system spine: `views.db` next to a SQLite file, else the same
    table, project or database (each view store keeps to its own items, collections or container)."""
    if system.backend_type == "sqlite":
        return Backend(
            backend_type="sqlite", config={"path": str(Path(system.config["path"]).with_name("views.db"))}
        )
    return system

"""Opening the backend a route (or `SPINE_SYSTEM_URL`) names, for either port: one place for both.

Each distinct backend is opened once and kept for the life of the process (its `stack`), so the
system spine, a route naming the same store, and every request resolving to it share one adapter:
one SQLite writer per file, one client per table or container.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import msgspec

from spine.adapters.cosmos_client import cosmos_options
from spine.adapters.cosmos_spine import DEFAULT_CONTAINER as COSMOS_EVENTS
from spine.adapters.cosmos_spine import CosmosSpine
from spine.adapters.cosmos_views import DEFAULT_CONTAINER as COSMOS_VIEWS
from spine.adapters.cosmos_views import CosmosViewStore
from spine.adapters.dynamodb_spine import DynamoDBSpine
from spine.adapters.dynamodb_table import dynamodb_options
from spine.adapters.dynamodb_views import DynamoDBViewStore
from spine.adapters.firestore_spine import FirestoreSpine
from spine.adapters.firestore_views import FirestoreViewStore
from spine.adapters.memory_spine import MemorySpine
from spine.adapters.memory_views import MemoryViewStore
from spine.adapters.secret_resolver import ChainSecretResolver
from spine.adapters.sqlite_file import Synchronous
from spine.adapters.sqlite_spine import SQLiteSpine
from spine.adapters.sqlite_views import SQLiteViewStore
from spine.app.metered_spine import MeteredSpine
from spine.app.metrics import Metrics
from spine.app.settings import Settings
from spine.domain.backend_url import Backend
from spine.domain.errors import BackendUnavailable
from spine.domain.ports import EventSpine, Notifier, SecretResolver, ViewStore

EVENT_SPINE = "event_spine"


def secrets_for(settings: Settings) -> SecretResolver:
    # `secret://env/…` only where the environment is the developer's own (lab, or env dev)
    return ChainSecretResolver(
        allow_env=settings.deployment == "lab" or settings.default_env == "dev", base_dir=settings.data_dir
    )


class Backends:
    def __init__(
        self,
        *,
        stack: AsyncExitStack,
        notifier: Notifier,
        metrics: Metrics,
        secrets: SecretResolver,
        data_dir: Path,
        synchronous: Synchronous,
    ) -> None:
        self._stack = stack
        self._notifier = notifier
        self._metrics = metrics
        self._secrets = secrets
        self._data_dir = data_dir
        self._synchronous = synchronous
        self._spines: dict[bytes, EventSpine] = {}
        self._views: dict[bytes, ViewStore] = {}
        self._lock = anyio.Lock()

    async def spine(self, backend: Backend) -> EventSpine:
        """The event spine `backend` names, opened on first use."""
        key = self._key(backend)
        async with self._lock:
            if key not in self._spines:
                self._spines[key] = MeteredSpine(await self._open_spine(backend), self._metrics)
            return self._spines[key]

    async def views(self, backend: Backend, kind: str) -> ViewStore:
        """The view store `backend` names (for resource `kind`, named in its errors)."""
        key = self._key(backend)
        async with self._lock:
            if key not in self._views:
                self._views[key] = await self._open_views(backend, kind)
            return self._views[key]

    def _key(self, backend: Backend) -> bytes:
        config: dict[str, Any] = dict(backend.config)
        if backend.backend_type == "sqlite":  # one file, however a route spells its path
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


def lab_views_of(system: Backend) -> Backend:
    """Where lab views live beside a system spine: `views.db` next to a SQLite file, else the same
    table, project or database (each view store keeps to its own items, collections or container)."""
    if system.backend_type == "sqlite":
        return Backend(
            backend_type="sqlite", config={"path": str(Path(system.config["path"]).with_name("views.db"))}
        )
    return system

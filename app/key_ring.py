"""The data keys of users' personal fields (`domain.personal`), kept in a view store of their own.

Each tenant's keys live in one space of the store routed for the `key_store` kind (in lab, without
a route, the lab's view store), one document per user. No new adapter is needed: the ViewStore
rule that an op whose position is not newer than its document's is skipped makes creation
race-free. A creator writes the new key at one past the space's checkpoint (which every write
here moves to its own position, so it is past every document's), then reads the document back:
of two racing creators the second write is skipped, and both use the key that won. Destroying
writes a delete (a tombstone) at the next position; a later creation starts a new key id, so data
written after an erasure is readable, and data before it stays erased.

Keys are cached per process. An erasure is recorded in the control plane (`user.data_erased`),
which every process follows: a cached key is used only while the user's erasure count is the one
it was cached under. A key id found destroyed stays so (ids are never reused), so that answer is
kept for good. Keys never reach a log, an answer or an error.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import anyio

from adapters.data_keys import DataKey, new_key
from app.backends import Backends
from domain.archive import ArchivedKey
from domain.backend_url import Backend
from domain.errors import BackendUnavailable
from domain.ports import ViewStore
from domain.routing import WILDCARD, resolve
from domain.views import Delete, Upsert
from projections.control_plane import ControlPlaneProjector

KIND = "key_store"
COLLECTION = "data_keys"
_CREATE_ATTEMPTS = 5  # a read-back that finds nothing (a destroy raced in) decides again
_PAGE = 1000
_MAX_CACHED = 100_000  # cached keys; past that the cache starts over

StoreOf = Callable[[str], Awaitable[ViewStore]]
"""The key store of a tenant (resolved through the routing registry)."""
ErasuresOf = Callable[[str, str], int]
"""How many erasures of (tenant, user) this process has seen (the control plane's count)."""
UserKey = tuple[str, str]  # (user id, key id)
K = TypeVar("K")
V = TypeVar("V")


def space_of(tenant_id: str) -> str:
    """The space of a tenant's keys: no projection's (those are `partition/name/generation`)."""
    return f"_data_keys/{tenant_id}"


def routed_key_stores(projector: ControlPlaneProjector, backends: Backends, lab_views: ViewStore) -> StoreOf:
    """A tenant's key store: the one routed for `key_store` tenant-wide in the deployment's env
    (a user's key covers all of the tenant's projects and envs, so one erasure reaches them all);
    in lab, without a route, the lab's view store in the data directory."""

    async def store_of(tenant_id: str) -> ViewStore:
        mode = projector.state.tenant(tenant_id).mode
        resolution = resolve(projector.registry, KIND, tenant_id, projector.partition.env, WILDCARD, mode)
        if resolution.route is None:
            return lab_views
        route = resolution.route
        return await backends.views(Backend(backend_type=route.backend_type, config=route.config), KIND)

    return store_of


class KeyRing:
    def __init__(self, store_of: StoreOf, erasures_of: ErasuresOf) -> None:
        self._store_of = store_of
        self._erasures_of = erasures_of
        self._current: dict[tuple[str, str], tuple[DataKey, int]] = {}
        self._found: dict[tuple[str, str, str], tuple[DataKey | None, int]] = {}
        self._creating: dict[tuple[str, str], anyio.Lock] = {}

    @classmethod
    def following(cls, store_of: StoreOf, projector: ControlPlaneProjector) -> KeyRing:
        """A ring whose cache follows the erasures of the process's control plane."""
        return cls(store_of, lambda tenant_id, user_id: projector.state.erasures_of(tenant_id, user_id))

    async def current(self, tenant_id: str, user_id: str) -> DataKey:
        """The user's live key, made when there is none."""
        erasures = self._erasures_of(tenant_id, user_id)
        cached = self._current.get((tenant_id, user_id))
        if cached is not None and cached[1] == erasures:
            return cached[0]
        store, space = await self._store_of(tenant_id), space_of(tenant_id)
        lock = self._creating.setdefault((tenant_id, user_id), anyio.Lock())
        async with lock:  # of this process's requests for the user's key, one makes it; the rest find it
            try:
                cached = self._current.get((tenant_id, user_id))
                if cached is not None and cached[1] == erasures:
                    return cached[0]
                for _ in range(_CREATE_ATTEMPTS):
                    key = await self._create(store, space, user_id)
                    if key is not None:
                        self._keep(self._current, (tenant_id, user_id), (key, erasures))
                        return key
            finally:
                if not lock.statistics().tasks_waiting:  # correct without it too: it only saves trips
                    self._creating.pop((tenant_id, user_id), None)
        raise BackendUnavailable(KIND, "a data key could not be created: the key store keeps losing it")

    async def _create(self, store: ViewStore, space: str, user_id: str) -> DataKey | None:
        """The user's key, made if absent; None when a destroy raced this attempt."""
        # The checkpoint before the document: every write here moves both at once (or, where an
        # apply is not one transaction, the document first), so a creator that sees another's
        # checkpoint sees its key, and two creators that saw the same one write at one position,
        # where the second write is skipped.
        position = await store.checkpoint(space) + 1
        key = await _read(store, space, user_id)
        if key is None:
            key_id, material = new_key()
            data = {"key_id": key_id, "material": base64.b64encode(material).decode("ascii")}
            await store.apply(
                space, [Upsert(collection=COLLECTION, key=user_id, data=data, position=position)], position
            )
            key = await _read(store, space, user_id)  # the key that won, ours or a racer's
        return key

    async def find(self, tenant_id: str, wanted: Iterable[UserKey]) -> dict[UserKey, DataKey | None]:
        """The keys of the `wanted` (user id, key id) pairs; None for each one destroyed."""
        found: dict[UserKey, DataKey | None] = {}
        unknown: set[UserKey] = set()
        for user_id, key_id in wanted:
            cached = self._found.get((tenant_id, user_id, key_id))
            if cached is not None and (
                cached[0] is None or cached[1] == self._erasures_of(tenant_id, user_id)
            ):
                found[(user_id, key_id)] = cached[0]
            else:
                unknown.add((user_id, key_id))
        if unknown:
            store, space = await self._store_of(tenant_id), space_of(tenant_id)
            for user_id in {user_id for user_id, _ in unknown}:
                erasures = self._erasures_of(tenant_id, user_id)  # read before the key: never newer
                live = await _read(store, space, user_id)
                for pair in [pair for pair in unknown if pair[0] == user_id]:
                    key = live if live is not None and live.key_id == pair[1] else None
                    self._keep(self._found, (tenant_id, *pair), (key, erasures))
                    found[pair] = key
        return found

    async def destroy(self, tenant_id: str, user_id: str) -> None:
        """Delete the user's key (nothing when there is none): every field sealed under it is erased."""
        store, space = await self._store_of(tenant_id), space_of(tenant_id)
        doc = await store.get(space, COLLECTION, user_id)
        if doc is not None:
            position = max(doc.position, await store.checkpoint(space)) + 1
            await store.apply(
                space, [Delete(collection=COLLECTION, key=user_id, position=position)], position
            )
        self.forget(tenant_id, user_id)

    async def live_keys(self, tenant_id: str) -> list[ArchivedKey]:
        """Every live key of the tenant's users, by user id (what a tenant archive carries)."""
        store, space = await self._store_of(tenant_id), space_of(tenant_id)
        keys: list[ArchivedKey] = []
        after = ""
        while docs := await store.list(space, COLLECTION, after=after, limit=_PAGE):
            keys += [ArchivedKey(user_id=doc.key, key_id=str(doc.data["key_id"]), material=str(doc.data["material"]))
                     for doc in docs]  # fmt: skip
            after = docs[-1].key
        return keys

    async def live_key_id(self, tenant_id: str, user_id: str) -> str | None:
        key = await _read(await self._store_of(tenant_id), space_of(tenant_id), user_id)
        return None if key is None else key.key_id

    async def adopt(self, key: ArchivedKey, tenant_id: str) -> bool:
        """Make `key` the user's (an import): True once it is, False when the user holds another."""
        store, space = await self._store_of(tenant_id), space_of(tenant_id)
        position = await store.checkpoint(space) + 1
        held = await _read(store, space, key.user_id)
        if held is None:
            data = {"key_id": key.key_id, "material": key.material}
            await store.apply(
                space,
                [Upsert(collection=COLLECTION, key=key.user_id, data=data, position=position)],
                position,
            )
            held = await _read(store, space, key.user_id)
        return held is not None and held.key_id == key.key_id

    def forget(self, tenant_id: str, user_id: str) -> None:
        """Drop what this process cached of the user's keys (their erasure was seen)."""
        self._current.pop((tenant_id, user_id), None)
        for cached in [
            k for k, (key, _) in self._found.items() if k[:2] == (tenant_id, user_id) and key is not None
        ]:
            del self._found[cached]

    @staticmethod
    def _keep(cache: dict[K, V], key: K, value: V) -> None:
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[key] = value


async def _read(store: ViewStore, space: str, user_id: str) -> DataKey | None:
    doc = await store.get(space, COLLECTION, user_id)
    if doc is None:
        return None
    return DataKey(str(doc.data["key_id"]), base64.b64decode(doc.data["material"]))

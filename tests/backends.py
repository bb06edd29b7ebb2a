"""Every adapter of the EventSpine, ViewStore and ObjectStore ports, for the contract suites to run against.

A backend that needs a server (a peer) registers itself from `tests/peers/<backend>.py`: its
factory starts the peer once per test session if nothing listens yet, and skips with a reason
locally (fails under CI=true) when the peer cannot run here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from adapters.filesystem.objects import FilesystemObjectStore
from adapters.memory.spine import MemorySpine
from adapters.memory.views import MemoryViewStore
from adapters.sqlite.spine import SQLiteSpine
from adapters.sqlite.views import SQLiteViewStore
from domain.ports import EventSpine, Notifier, ObjectStore, ViewStore

# (a fresh directory, the notifier) -> a spine holding nothing yet
SpineFactory = Callable[[Path, Notifier], AbstractAsyncContextManager[EventSpine]]
# (a fresh directory) -> a view store holding nothing yet
ViewsFactory = Callable[[Path], AbstractAsyncContextManager[ViewStore]]


@asynccontextmanager
async def _memory_spine(_: Path, notifier: Notifier) -> AsyncIterator[EventSpine]:
    yield MemorySpine(notifier)


@asynccontextmanager
async def _sqlite_spine(directory: Path, notifier: Notifier) -> AsyncIterator[EventSpine]:
    async with SQLiteSpine(directory / "spine.db", notifier=notifier) as spine:
        yield spine


@asynccontextmanager
async def _memory_views(_: Path) -> AsyncIterator[ViewStore]:
    yield MemoryViewStore()


@asynccontextmanager
async def _sqlite_views(directory: Path) -> AsyncIterator[ViewStore]:
    async with SQLiteViewStore(directory / "views.db") as views:
        yield views


@dataclass(frozen=True)
class ObjectsUnderTest:
    """An object store holding nothing yet (a bucket, container or directory of its own), with
    what the contract suite needs to know about it."""

    store: ObjectStore
    part_size: int  # the parts its uploads are cut into: small, so a few MB make several
    # what an interrupted upload could leave behind in the backend (pending multipart uploads,
    # partial files): must be empty once a put has failed
    leftovers: Callable[[], Awaitable[list[str]]]
    signs: bool  # hands out signed URLs (the lab filesystem does not)


# (a fresh directory) -> an empty object store
ObjectsFactory = Callable[[Path], AbstractAsyncContextManager[ObjectsUnderTest]]
# () -> an object store whose backend does not answer (a port nothing listens on)
UnreachableObjectsFactory = Callable[[], AbstractAsyncContextManager[ObjectStore]]


@asynccontextmanager
async def _filesystem_objects(directory: Path) -> AsyncIterator[ObjectsUnderTest]:
    part_size = 256 * 1024
    async with FilesystemObjectStore(directory / "objects", part_size=part_size) as store:

        async def leftovers() -> list[str]:
            return sorted([path.name async for path in anyio.Path(store.root / "partial").iterdir()])

        yield ObjectsUnderTest(store=store, part_size=part_size, leftovers=leftovers, signs=False)


SPINES: dict[str, SpineFactory] = {"memory": _memory_spine, "sqlite": _sqlite_spine}
VIEWS: dict[str, ViewsFactory] = {"memory": _memory_views, "sqlite": _sqlite_views}
OBJECTS: dict[str, ObjectsFactory] = {"filesystem": _filesystem_objects}
UNREACHABLE_OBJECTS: dict[str, UnreachableObjectsFactory] = {}  # a local directory is never down

# Each peer module adds its factories to SPINES, VIEWS and OBJECTS (UNREACHABLE_OBJECTS) when imported.
from tests.peers import azurite, cosmos, dynamodb, firestore, s3  # noqa: E402, F401

"""Every adapter of the EventSpine and ViewStore ports, for the contract suites to run against.

A backend that needs a server (a peer) registers itself from `tests/peers/<backend>.py`: its
factory starts the peer once per test session if nothing listens yet, and skips with a reason
locally (fails under CI=true) when the peer cannot run here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from adapters.memory.spine import MemorySpine
from adapters.memory.views import MemoryViewStore
from adapters.sqlite.spine import SQLiteSpine
from adapters.sqlite.views import SQLiteViewStore
from domain.ports import EventSpine, Notifier, ViewStore

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


SPINES: dict[str, SpineFactory] = {"memory": _memory_spine, "sqlite": _sqlite_spine}
VIEWS: dict[str, ViewsFactory] = {"memory": _memory_views, "sqlite": _sqlite_views}

# Each peer module adds its factories to SPINES and VIEWS when imported.
from tests.peers import cosmos, dynamodb, firestore  # noqa: E402, F401

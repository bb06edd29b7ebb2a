"""The key ring over every view store (`tests.backends.VIEWS`): keys made once however many
processes race to make them, destroyed for good, and a new key id after a destroy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from app.key_ring import KeyRing
from domain.ports import ViewStore
from tests.backends import VIEWS


@pytest.fixture(params=list(VIEWS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ViewStore]:
    async with VIEWS[request.param](tmp_path) as views:
        yield views


def ring(store: ViewStore, erasures: dict[tuple[str, str], int] | None = None) -> KeyRing:
    """A process's ring; `erasures` stands for the control plane it follows."""
    seen = erasures if erasures is not None else {}

    async def store_of(_: str) -> ViewStore:
        return store

    return KeyRing(store_of, lambda tenant_id, user_id: seen.get((tenant_id, user_id), 0))


async def test_racing_processes_end_with_one_key(store: ViewStore) -> None:
    rings = [ring(store) for _ in range(4)]  # four processes, each with its own cache
    made: list[str] = []

    async def make(keys: KeyRing) -> None:
        made.append((await keys.current("t1", "u1")).key_id)

    async with anyio.create_task_group() as tg:
        for keys in rings:
            for _ in range(3):
                tg.start_soon(make, keys)
    assert len(set(made)) == 1
    found = await ring(store).find("t1", [("u1", made[0])])
    assert found[("u1", made[0])] is not None


async def test_a_destroyed_key_is_gone_and_the_next_is_a_new_one(store: ViewStore) -> None:
    erasures: dict[tuple[str, str], int] = {}
    keys, other = ring(store, erasures), ring(store, erasures)
    first = await keys.current("t1", "u1")
    kept = await keys.current("t1", "u2")
    assert (await other.find("t1", [("u1", first.key_id)]))[("u1", first.key_id)] is not None  # cached there
    await keys.destroy("t1", "u1")
    erasures[("t1", "u1")] = 1  # the control plane's record reaches every process
    assert (await other.find("t1", [("u1", first.key_id)]))[("u1", first.key_id)] is None
    second = await other.current("t1", "u1")
    assert second.key_id != first.key_id
    assert (await keys.find("t1", [("u1", second.key_id)]))[("u1", second.key_id)] is not None
    assert (await keys.find("t1", [("u2", kept.key_id)]))[("u2", kept.key_id)] is not None  # another user's
    await keys.destroy("t1", "u3")  # nobody's key: nothing to do


async def test_tenants_have_keys_of_their_own(store: ViewStore) -> None:
    keys = ring(store)
    one, two = await keys.current("t1", "u1"), await keys.current("t2", "u1")
    assert one.key_id != two.key_id
    assert (await keys.find("t2", [("u1", one.key_id)]))[("u1", one.key_id)] is None

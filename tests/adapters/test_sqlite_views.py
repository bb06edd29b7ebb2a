"""SQLite view store specifics: durable across reopen, all-or-nothing batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from adapters.sqlite.views import SQLiteViewStore
from domain.errors import BackendUnavailable
from tests.contract.test_view_store import P, up


async def test_documents_and_checkpoints_survive_reopening(tmp_path: Path) -> None:
    async with SQLiteViewStore(tmp_path / "views.db") as views:
        await views.apply(P, [up("k", 4)], checkpoint=4)
    async with SQLiteViewStore(tmp_path / "views.db") as views:
        doc = await views.get(P, "memory", "k")
        assert doc is not None
        assert doc.position == 4
        assert await views.checkpoint(P) == 4


async def test_a_batch_that_cannot_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    async with SQLiteViewStore(tmp_path / "views.db", busy_timeout_ms=50) as views:
        await views.apply(P, [up("a", 1)], checkpoint=1)
        blocker = sqlite3.connect(tmp_path / "views.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(BackendUnavailable) as caught:
                await views.apply(P, [up("a", 2), up("b", 2)], checkpoint=2)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert caught.value.error_code == "view_store.backend_unavailable"
        assert await views.get(P, "memory", "b") is None
        assert await views.checkpoint(P) == 1

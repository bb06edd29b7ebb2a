"""The e2e suites' fixture: a real `spine serve` process, provisioned, stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from tests.e2e.test_kill_restart import SpineServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SpineServer]:
    spine = SpineServer(tmp_path / "data", tmp_path)
    try:
        await spine.start()
        await spine.provision()
        yield spine
    finally:
        with anyio.CancelScope(shield=True):
            await spine.stop()

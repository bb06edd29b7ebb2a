"""The e2e suites' fixture: a real `spine serve` process, provisioned, stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.test_kill_restart import SpineServer


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SpineServer]:
    async with SpineServer(tmp_path / "data", tmp_path).running() as spine:
        yield spine

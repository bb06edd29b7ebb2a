"""Fixtures of the spine contract suites: each test runs once per adapter in `tests.backends.SPINES`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.local_notifier import LocalNotifier
from domain.ports import EventSpine
from tests.backends import SPINES


@pytest.fixture
def notifier() -> LocalNotifier:
    return LocalNotifier()


@pytest.fixture(params=list(SPINES))
async def spine(
    request: pytest.FixtureRequest, tmp_path: Path, notifier: LocalNotifier
) -> AsyncIterator[EventSpine]:
    async with SPINES[request.param](tmp_path, notifier) as adapter:
        yield adapter

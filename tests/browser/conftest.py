"""The browser tests need Chromium: without it they skip (locally) or fail (CI=true) at once,
before any server starts."""

from __future__ import annotations

import pytest

from tests.browser.cdp import chromium_binary


@pytest.fixture(autouse=True)
def _chromium_installed() -> None:
    chromium_binary()

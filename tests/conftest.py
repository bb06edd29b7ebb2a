"""Shared fixtures. Tests that need an absent server skip locally and fail under CI=true."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest

REDIS_URL = os.environ.get("SPINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_server(host: str, port: int, what: str) -> None:
    """Skip (locally) or fail (under CI=true) when nothing listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        unavailable(f"{what} is not reachable on {host}:{port} ({exc})")


def unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (under CI=true): a server the test needs cannot be had here."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires it: {reason}")
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> str:
    require_server("127.0.0.1", 6379, "the Redis server")
    return REDIS_URL


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "spine.db"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""Outside lab, `spine serve` needs Redis (the bus between instances): without `SPINE_REDIS_URL`
it says so in one line on stderr and exits non-zero before it binds its port; with it, it serves."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from tests.e2e.test_kill_restart import SpineServer, spine_env
from tests.peers import free_port

pytestmark = pytest.mark.e2e

PRODUCTION = {"SPINE_DEPLOYMENT": "production", "SPINE_BOOTSTRAP_KEY": "k", "SPINE_TOKEN_KEY": "t" * 32}


async def test_production_without_redis_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--data-dir", str(tmp_path / "data")]  # fmt: skip
    with anyio.fail_after(60):
        done = await anyio.run_process(
            command, stdin=subprocess.DEVNULL, env={**spine_env(), **PRODUCTION}, check=False
        )
    lines = [line for line in done.stderr.decode().splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(lines) == 1, lines  # one line: no log of serving, no server starting
    assert "SPINE_REDIS_URL" in lines[0]
    assert "production" in lines[0]
    assert done.stdout == b""
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nothing ever listened there
    assert not (tmp_path / "data").exists()  # nor was anything made


async def test_production_with_redis_starts(tmp_path: Path, redis_url: str) -> None:
    server = SpineServer(tmp_path / "data", tmp_path, env={**PRODUCTION, "SPINE_REDIS_URL": redis_url})
    try:
        await server.start()  # waits until /health answers
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/health")).status_code == 200
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop()

"""`spine-client` is a distribution of its own: it imports nothing of the server, and installed
alone (`pip install ./clients/python` into a fresh venv) it follows a live server."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.conftest import PROJECT, SURFACE, mint
from tests.conftest import unavailable
from tests.http.conftest import LiveServer

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_PACKAGES = {"app", "domain", "adapters", "projections", "tests"}
# What the server installs and the client must not pull in
SERVER_ONLY = {"spine", "litestar", "uvicorn", "redis", "aioboto3", "pyjwt", "azure-cosmos", "click", "rich"}
_OFFLINE = re.compile(r"Could not find a version|Failed to establish|Temporary failure in name resolution|"
                      r"Network is unreachable|No matching distribution")  # fmt: skip

TINY_FOLLOW = """
import asyncio, contextlib, importlib.util, json, sys
from spine_client import SpineClient, SyncSpineClient, __version__

url, token, project, surface = sys.argv[1:]
server = [name for name in ("app", "domain", "adapters", "projections") if importlib.util.find_spec(name)]

async def main():
    async with SpineClient(url, token=token, project_id=project, surface_id=surface) as spine:
        await spine.append("s", [{"type": "t.created", "data": {"n": n}} for n in range(3)])
        async with contextlib.aclosing(spine.follow()) as events:
            followed = [(await anext(events)).position for _ in range(3)]
    with SyncSpineClient(url, token=token, project_id=project, surface_id=surface) as sync:
        head = sync.read().head
    print(json.dumps({"version": __version__, "server": server, "followed": followed, "head": head}))

asyncio.run(main())
"""


def test_the_client_imports_nothing_of_the_server() -> None:
    imported: set[str] = set()
    for module in (CLIENT / "spine_client").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert imported & SERVER_PACKAGES == set()
    assert {"httpx", "msgspec", "anyio", "spine_client"} <= imported


@pytest.mark.e2e
def test_installed_alone_it_follows_a_live_server(tmp_path: Path, live: LiveServer) -> None:
    source = shutil.copytree(CLIENT, tmp_path / "client")  # pip builds in the tree it is given
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if install.returncode != 0:
        if _OFFLINE.search(install.stderr):
            unavailable(f"the package index is not reachable: {install.stderr[-300:]}")
        pytest.fail(install.stderr)
    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "spine-client" in installed
    assert installed & SERVER_ONLY == set()

    ran = subprocess.run(
        [python, "-c", TINY_FOLLOW, live.url, mint(3600), PROJECT, SURFACE],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"version": "0.1.0", "server": [], "followed": [1, 2, 3], "head": 3}

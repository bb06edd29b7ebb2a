"""The cosmos backend's peer and factories for the contract suites.

The peer is `@vercel/cosmosdb-server` (`.ci/peers/cosmos.sh` installs it under `.peers/cosmos`;
`SPINE_TEST_COSMOS_PACKAGE` may name another copy of the package). It is started once per test
session on a free port, on first use, and stopped at exit. It runs as its `cosmosdb-server -p PORT
--host 127.0.0.1 --no-ssl` would, but through the package's own `createHttpServer({keepAlive:
true})`: the CLI answers every request with `connection: close`, and a new TCP connection per
request halves the suite's speed. Each factory call gets a fresh container. `cosmos-split` runs the
spine with tiny items, so that large commits are split into parts.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from azure.cosmos.aio import CosmosClient

from adapters.cosmos.spine import CosmosSpine
from adapters.cosmos.views import CosmosViewStore
from domain.ports import EventSpine, Notifier, ViewStore
from tests.backends import SPINES, VIEWS
from tests.conftest import require_server, unavailable
from tests.peers import await_ready, free_port, listening

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(
    os.environ.get("SPINE_TEST_COSMOS_PACKAGE", ROOT / ".peers/cosmos/node_modules/@vercel/cosmosdb-server")
)
_SERVE = (
    "require(process.argv[1]).createHttpServer({keepAlive: true})"
    ".listen(Number(process.argv[2]), '127.0.0.1', () => console.log('ready'))"
)
# The emulator's well-known key: the peer accepts any key, the SDK wants base64.
KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
DATABASE = "spine_tests"
_STARTUP_SECONDS = 30

_peer: dict[str, object] = {}


def _start() -> tuple[int, str | None]:
    """Start the peer; (its port, None) or (0, why not)."""
    node = shutil.which("node")
    if node is None or not (PACKAGE / "package.json").exists():
        return 0, f"the Cosmos DB peer is not installed ({PACKAGE} and node; run .ci/peers/cosmos.sh)"
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="cosmosdb-server-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [node, "-e", _SERVE, str(PACKAGE), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    atexit.register(_stop, process)
    failure = await_ready(process, listening(port), _STARTUP_SECONDS)
    return (port, None) if failure is None else (0, f"the Cosmos DB peer failed: {failure}; see {log.name}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def endpoint() -> str:
    """The peer's endpoint, starting it on first use; skips (fails under CI=true) when it cannot run."""
    if not _peer:
        port, reason = _start()
        _peer.update(port=port, reason=reason)
    if _peer["reason"] is not None:
        unavailable(str(_peer["reason"]))
    port = int(str(_peer["port"]))
    require_server("127.0.0.1", port, "the Cosmos DB peer")
    return f"http://127.0.0.1:{port}"


async def drop_container(url: str, container: str) -> None:
    async with CosmosClient(url, KEY, enable_endpoint_discovery=False) as client:
        await client.get_database_client(DATABASE).delete_container(container)


@asynccontextmanager
async def _spine(notifier: Notifier, **options: int) -> AsyncIterator[EventSpine]:
    url, container = endpoint(), f"events-{uuid.uuid4().hex[:12]}"
    async with CosmosSpine(
        endpoint=url, database=DATABASE, container=container, key=KEY, notifier=notifier, **options
    ) as spine:
        yield spine
    await drop_container(url, container)


@asynccontextmanager
async def _cosmos_spine(_: Path, notifier: Notifier) -> AsyncIterator[EventSpine]:
    async with _spine(notifier) as spine:
        yield spine


@asynccontextmanager
async def _cosmos_split_spine(_: Path, notifier: Notifier) -> AsyncIterator[EventSpine]:
    async with _spine(notifier, item_bytes=16_384) as spine:
        yield spine


@asynccontextmanager
async def _cosmos_views(_: Path) -> AsyncIterator[ViewStore]:
    url, container = endpoint(), f"views-{uuid.uuid4().hex[:12]}"
    async with CosmosViewStore(endpoint=url, database=DATABASE, container=container, key=KEY) as views:
        yield views
    await drop_container(url, container)


SPINES["cosmos"] = _cosmos_spine
SPINES["cosmos-split"] = _cosmos_split_spine
VIEWS["cosmos"] = _cosmos_views

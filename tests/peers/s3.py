"""The s3 object store's factories for the contract suite, against moto's standalone S3 server.

The peer is `python -m moto.server` (moto[server] is in the test extra), started once per test
session on a free port in a process of its own (so its memory is not the adapter's, which the
50 MB test measures) and stopped at exit. `SPINE_TEST_S3_URL` points the tests at a server that
already runs instead. Each factory call gets a bucket of its own, emptied and deleted afterwards.
Parts are S3's minimum (5 MiB), which moto enforces as S3 does.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aioboto3  # type: ignore[import-untyped]
import anyio

from adapters.s3.objects import MIN_PART, S3ObjectStore
from domain.ports import ObjectStore
from tests.backends import OBJECTS, UNREACHABLE_OBJECTS, ObjectsUnderTest
from tests.conftest import unavailable
from tests.peers import await_ready, free_port, listening

REGION = "us-east-1"
# moto takes any credentials; signing (pre-signed URLs) needs some
ACCESS_KEY_ID = "spine-test"
SECRET_ACCESS_KEY = "spine-test-secret"
_lock = threading.Lock()
_peer: dict[str, str | None] = {}
_sessions: list[aioboto3.Session] = []


def session() -> aioboto3.Session:
    """One session for the whole run: a new one loads the service model again."""
    if not _sessions:
        _sessions.append(
            aioboto3.Session(
                aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
            )
        )
    return _sessions[0]


def start_moto(log_dir: Path | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A moto S3 server on a free port, and its URL; RuntimeError with the reason it did not start."""
    port = free_port()
    log = open(os.devnull, "wb") if log_dir is None else (log_dir / "moto.log").open("wb")  # noqa: SIM115
    with log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    failure = await_ready(process, listening(port), 60)
    if failure is not None:
        stop(process)
        raise RuntimeError(f"moto's S3 server failed: {failure}")
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def endpoint() -> str:
    """The peer's URL, starting it on first use; skips (fails under CI=true) when it cannot run."""
    with _lock:
        if not _peer:
            url = os.environ.get("SPINE_TEST_S3_URL")
            if url:
                _peer.update(url=url, reason=None)
            else:
                try:
                    process, url = start_moto()
                    atexit.register(stop, process)
                    _peer.update(url=url, reason=None)
                except RuntimeError as exc:
                    _peer.update(url=None, reason=str(exc))
    url = _peer["url"]
    if url is None:
        unavailable(f"moto's S3 server cannot run here: {_peer['reason']}")
    return url


@asynccontextmanager
async def bucket(url: str) -> AsyncIterator[str]:
    """A fresh bucket on the server at `url`; emptied and deleted afterwards."""
    name = f"spine-test-{uuid.uuid4().hex[:16]}"
    async with session().client("s3", endpoint_url=url, region_name=REGION) as client:
        await client.create_bucket(Bucket=name)
        try:
            yield name
        finally:
            await _empty(client, name)
            with suppress(client.exceptions.NoSuchBucket):
                await client.delete_bucket(Bucket=name)


async def _empty(client: Any, name: str) -> None:
    for upload in (await client.list_multipart_uploads(Bucket=name)).get("Uploads", []):
        await client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=name):
        for item in page.get("Contents", []):
            await client.delete_object(Bucket=name, Key=item["Key"])


@asynccontextmanager
async def _s3_objects(_: Path) -> AsyncIterator[ObjectsUnderTest]:
    url = await anyio.to_thread.run_sync(endpoint)
    async with (
        bucket(url) as name,
        S3ObjectStore(
            name, region=REGION, endpoint_url=url, prefix="tests/", session=session(), part_size=MIN_PART
        ) as store,
        session().client("s3", endpoint_url=url, region_name=REGION) as client,
    ):

        async def leftovers() -> list[str]:
            pending = (await client.list_multipart_uploads(Bucket=name)).get("Uploads", [])
            return [upload["Key"] for upload in pending]

        yield ObjectsUnderTest(store=store, part_size=MIN_PART, leftovers=leftovers, signs=True)


@asynccontextmanager
async def _s3_down() -> AsyncIterator[ObjectStore]:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with S3ObjectStore("nowhere", region=REGION, endpoint_url=url, session=session()) as store:
        yield store


OBJECTS["s3"] = _s3_objects
UNREACHABLE_OBJECTS["s3"] = _s3_down

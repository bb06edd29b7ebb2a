"""Failing backends fail fast (issue 12, items 5 and 8).

- No exception a backend's SDK or driver can raise reaches a client as a 500: raised from inside
  an adapter call, through the real wrapper `Backends` puts around every adapter, each is a 503
  `<kind>.backend_unavailable` with `Retry-After` (a property over the error tree).
- A backend that accepts connections and never answers: requests fail within the route's
  timeouts, and once its circuit breaker is open they are answered 503 at once, without a new
  connection to it (the listener counts its accepts), with the breaker's `Retry-After`;
  diagnostics report the breaker, `/ready` too when it is the system spine's, and a probe that
  succeeds after the cool-down closes it.
- A Cosmos route whose key is not base64 is a 503 naming the reference, never a 500, for data
  requests and for diagnostics.
"""

from __future__ import annotations

import binascii
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc  # type: ignore[import-untyped]
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.cosmos.exceptions import CosmosHttpResponseError
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from google.api_core import exceptions as google_errors
from google.auth.exceptions import DefaultCredentialsError
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from adapters.memory.spine import MemorySpine
from adapters.memory.views import MemoryViewStore
from app.http.factory import create_app
from app.settings import Settings
from domain.backend_url import Backend
from tests.http.conftest import Clock
from tests.http.test_events_api import assert_problem
from tests.peers import dynamodb
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _sdk_errors() -> list[BaseException]:
    """One instance of each exception type an adapter's SDK or driver may raise, built as the
    SDK builds it; and a few no adapter expects (a bug of ours, a driver's surprise)."""
    aborted = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="connection refused"
    )
    return [
        # DynamoDB (botocore / aiobotocore)
        ClientError(
            {
                "Error": {"Code": "AccessDeniedException", "Message": "denied"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "Query",
        ),
        ClientError(
            {
                "Error": {"Code": "InternalServerError", "Message": "boom"},
                "ResponseMetadata": {"HTTPStatusCode": 500},
            },
            "TransactWriteItems",
        ),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        NoCredentialsError(),
        # Cosmos DB (azure-core, azure-cosmos)
        HttpResponseError(message="bad gateway"),
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset"),
        CosmosHttpResponseError(status_code=503, message="unavailable"),
        CosmosHttpResponseError(status_code=401, message="the key is wrong"),
        # Firestore (google-api-core, google-auth, grpc)
        google_errors.ServiceUnavailable("unavailable"),
        google_errors.DeadlineExceeded("deadline"),
        google_errors.PermissionDenied("denied"),
        google_errors.RetryError("retries exhausted", cause=google_errors.ServiceUnavailable("x")),
        DefaultCredentialsError("no credentials"),
        aborted,
        # the embedded store and Redis
        sqlite3.OperationalError("database is locked"),
        sqlite3.DatabaseError("file is not a database"),
        RedisConnectionError("Connection refused"),
        RedisError("boom"),
        # the network, and aiohttp under both cloud SDKs
        OSError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
        aiohttp.ClientConnectionError("refused"),
        aiohttp.ServerTimeoutError("timed out"),
        # a Cosmos key that is not base64, as the SDK's signing raises it
        binascii.Error("Incorrect padding"),
        # what no adapter expects
        ValueError("unexpected"),
        KeyError("pk"),
        RuntimeError("driver bug"),
        ExceptionGroup("several", [OSError("a"), TimeoutError()]),
    ]


SDK_ERRORS = _sdk_errors()
# (what is called, the tenant whose route names it, method, path, body, the kind the answer names)
CALLS = [
    ("spine.read", "t1", "GET", "/v1/events", None, "event_spine"),
    ("spine.append", "t1", "POST", "/v1/events",
     {"stream": "s", "expected_version": "any", "events": [{"type": "a.b", "data": {}}]}, "event_spine"),
    ("views.get", "t2", "GET", "/v1/memory/k", None, "memory_store"),
    ("spine.read", "t1-admin", "POST", "/v1/retention/runs", {}, "event_spine"),  # a run reads, then removes
]  # fmt: skip


class Failing:
    """What the patched adapter methods raise next (None: they work)."""

    error: BaseException | None = None


def _failing(original: Any) -> Any:
    async def method(*args: Any, **kwargs: Any) -> Any:
        if Failing.error is not None:
            raise Failing.error
        return await original(*args, **kwargs)

    return method


Routed = tuple[TestClient[Any], dict[str, dict[str, str]]]


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routed]:
    """Two lab tenants: t1's log, and t2's memory view, routed to in-memory adapters whose calls
    raise `Failing.error`; every call still goes through the wrapper the service puts around
    adapters. (Embedded stores have no breaker, so each example's error really is raised. Two
    tenants, so that no projection runner in the background reads a log that is made to fail.)"""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("append", "read", "read_encoded", "read_stream", "head", "remove"):
            patch.setattr(MemorySpine, name, _failing(getattr(MemorySpine, name)))
        patch.setattr(MemoryViewStore, "get", _failing(MemoryViewStore.get))
        config = Settings(data_dir=tmp_path_factory.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY)
        with TestClient(create_app(config)) as client:
            headers = {tenant: provision_sync(client, tenant=tenant) for tenant in ("t1", "t2")}
            headers["t1-admin"] = provision_sync(client, tenant="t1", user="boss", role="admin")
            admin = admin_headers_sync(client)
            for tenant, kind in (("t1", "event_spine"), ("t2", "memory_store")):
                route = {"resource_kind": kind, "tenant_id": tenant, "env": "dev", "project_id": "p1",
                         "backend_type": "memory", "config": {}}  # fmt: skip
                assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
            yield client, headers


@settings(max_examples=80, deadline=None)
@given(error=st.sampled_from(SDK_ERRORS), call=st.sampled_from(CALLS))
def test_no_backend_exception_reaches_a_client_as_a_500(
    routed: Routed, error: BaseException, call: tuple[Any, ...]
) -> None:
    client, headers = routed
    _, tenant, method, path, body, kind = call
    Failing.error = error
    try:
        answer = client.request(method, path, json=body, headers=headers[tenant])
    finally:
        Failing.error = None
    problem = assert_problem(answer, 503, f"{kind}.backend_unavailable")
    assert int(answer.headers["retry-after"]) >= 1
    assert problem["resource_kind"] == kind
    assert str(error) not in problem["message"] or not str(error)  # the SDK's text is never echoed


def test_the_adapters_work_again_once_they_stop_raising(routed: Routed) -> None:
    client, headers = routed
    assert client.get("/v1/events", headers=headers["t1"]).status_code == 200
    assert client.get("/v1/memory/k", headers=headers["t2"]).status_code == 200


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts. Silent, it never answers
    (a backend that is down behind a load balancer); forwarding, it relays to `upstream`."""

    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        self.upstream = upstream
        self.forwarding = False
        self.accepted = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def silence(self) -> None:
        """Stop answering; connections already open are cut, so clients have to connect again."""
        with self._lock:
            self.forwarding = False
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def forward(self) -> None:
        assert self.upstream is not None
        self.forwarding = True

    def count(self) -> int:
        with self._lock:
            return self.accepted

    def close(self) -> None:
        self._closed = True
        self.silence()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._sockets.append(conn)
                relay = self.forwarding
            if relay:
                assert self.upstream is not None
                upstream = socket.create_connection(self.upstream)
                with self._lock:
                    self._sockets.append(upstream)
                for source, target in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@contextmanager
def listening(upstream: tuple[str, int] | None = None) -> Iterator[Listener]:
    listener = Listener(upstream)
    try:
        yield listener
    finally:
        listener.close()


def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


FAST = {"connect_timeout_seconds": 0.5, "request_timeout_seconds": 1}


def test_a_backend_that_never_answers_fails_within_its_timeouts_then_at_once_without_a_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB signs every request: without credentials nothing would ever be sent
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    config = Settings(data_dir=tmp_path, bootstrap_key=BOOTSTRAP_KEY, breaker_failures=2,
                      breaker_cool_down_seconds=60)  # fmt: skip
    with listening() as listener, TestClient(create_app(config, clock=Clock(START))) as client:
        headers = provision_sync(client, tenant="t9", mode="saas")
        admin = admin_headers_sync(client)
        route = {"resource_kind": "event_spine", "tenant_id": "t9", "env": "dev", "backend_type": "dynamodb",
                 "config": {"table": "spine", "region": "us-east-1", "endpoint_url": listener.url, **FAST}}  # fmt: skip
        assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
        for _ in range(2):  # each waits for the request timeout, on a connection of its own
            failed = client.get("/v1/events", headers=headers)
            assert_problem(failed, 503, "event_spine.backend_unavailable")
        wait_for(lambda: listener.count() >= 2)
        accepted = listener.count()
        # the breaker is open: refused at once, with the time until the next probe
        for answer in (
            client.get("/v1/events", headers=headers),
            client.post("/v1/events", json=CALLS[1][4], headers=headers),
        ):
            problem = assert_problem(answer, 503, "event_spine.backend_unavailable")
            assert int(answer.headers["retry-after"]) == 60  # the clock stands still: a full cool-down
            assert "refused until it is probed again" in problem["message"]
        diagnostics = client.get("/v1/diagnostics", params={"tenant_id": "t9"}, headers=admin).json()
        [check] = [c for c in diagnostics["checks"] if c["resource_kind"] == "event_spine"]
        assert (check["status"], check["error_code"], check["breaker"]) == (
            "unreachable", "event_spine.backend_unavailable", "open",
        )  # fmt: skip
        assert check["retry_after_seconds"] == 60
        assert listener.count() == accepted  # nothing of the above touched the backend
        # the system spine is another backend: the instance stays ready
        assert client.get("/ready").status_code == 200


def test_a_route_whose_timeouts_are_no_seconds_is_refused(
    client: TestClient[Any], headers: dict[str, str]
) -> None:
    admin = admin_headers_sync(client)
    for bad in ("soon", -1, 0, True, 10_000):
        route = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "backend_type": "dynamodb",
                 "config": {"table": "spine", "region": "us-east-1", "request_timeout_seconds": bad}}  # fmt: skip
        assert_problem(client.put("/v1/routes", json=route, headers=admin), 422, "request.invalid")


def test_the_system_spines_breaker_makes_ready_answer_503_at_once_and_a_probe_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system spine on DynamoDB Local behind a relay the test silences: `/ready` fails within the
    request timeout, then, with the breaker open, at once without a connection; once the backend
    answers again and the cool-down has passed, the next `/ready` is the probe and closes it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    peer = dynamodb.endpoint().removeprefix("http://").split(":")
    clock = Clock(START)
    with listening((peer[0], int(peer[1]))) as relay:
        relay.forward()
        system = Backend(backend_type="dynamodb", config={
            "table": f"spine-breaker-{uuid.uuid4().hex[:12]}", "region": dynamodb.REGION,
            "endpoint_url": relay.url, "create_table": True, **FAST})  # fmt: skip
        # poll_seconds: the control-plane follower must not poll the silenced system spine here,
        # for it does not survive a failed read yet (`ControlPlaneProjector.follow`; reported)
        config = Settings(data_dir=tmp_path, system_url=system.url, bootstrap_key=BOOTSTRAP_KEY, token_key="k" * 32,
                          breaker_failures=2, breaker_cool_down_seconds=30, poll_seconds=3600)  # fmt: skip
        with TestClient(create_app(config, clock=clock)) as client:
            headers = provision_sync(client)
            admin = admin_headers_sync(client)
            # the lab tenant's log on the system's own backend: diagnostics probe that backend
            route = {"resource_kind": "event_spine", "tenant_id": "t1", "env": "dev", "project_id": "p1",
                     "backend_type": "dynamodb", "config": config.system.config}  # fmt: skip
            assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
            assert client.get("/ready").status_code == 200

            relay.silence()
            for _ in range(2):
                assert_problem(client.get("/ready"), 503, "event_spine.backend_unavailable")
            wait_for(lambda: relay.count() >= 2)
            accepted = relay.count()
            refused = client.get("/ready")
            assert_problem(refused, 503, "event_spine.backend_unavailable")
            assert int(refused.headers["retry-after"]) == 30
            [check] = [c for c in client.get("/v1/diagnostics", headers=admin).json()["checks"]
                       if (c["tenant_id"], c["resource_kind"]) == ("t1", "event_spine")]  # fmt: skip
            assert (check["status"], check["breaker"], check["retry_after_seconds"]) == (
                "unreachable",
                "open",
                30,
            )
            assert_problem(client.get("/v1/events", headers=headers), 503, "event_spine.backend_unavailable")
            assert relay.count() == accepted

            relay.forward()
            clock.now += timedelta(seconds=29)
            assert_problem(client.get("/ready"), 503, "event_spine.backend_unavailable")  # not yet
            assert relay.count() == accepted
            clock.now += timedelta(seconds=1)
            assert client.get("/ready").status_code == 200  # the probe went through: closed
            [check] = [c for c in client.get("/v1/diagnostics", headers=admin).json()["checks"]
                       if (c["tenant_id"], c["resource_kind"]) == ("t1", "event_spine")]  # fmt: skip
            assert (check["status"], check["breaker"], check["retry_after_seconds"]) == ("ok", "closed", None)
            assert client.get("/v1/events", headers=headers).status_code == 200


def test_a_cosmos_key_that_is_not_base64_is_a_503_naming_the_reference_never_a_500(
    client: TestClient[Any], headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK decodes the key when it signs its first request: no network is involved."""
    monkeypatch.setenv("COSMOS_TEST_BAD_KEY", "not-base64!!")
    admin = admin_headers_sync(client)
    for kind in ("event_spine", "memory_store"):
        route = {"resource_kind": kind, "tenant_id": "t1", "env": "dev", "project_id": "p1",
                 "backend_type": "cosmos", "config": {"endpoint": "http://127.0.0.1:9/", "database": "d",
                                                      "key": "secret://env/COSMOS_TEST_BAD_KEY"}}  # fmt: skip
        assert client.put("/v1/routes", json=route, headers=admin).status_code == 200
    answers = [
        client.get("/v1/events", headers=headers),
        client.put("/v1/memory/goal", json={"value": "ship"}, headers=headers),
        client.get("/v1/memory/goal", headers=headers),
    ]
    for answer in answers:
        problem = assert_problem(answer, 503, "secret.unavailable")
        assert problem["ref"] == "secret://env/COSMOS_TEST_BAD_KEY"
        assert "base64" in problem["message"]
        assert "not-base64" not in answer.text
    diagnostics = client.get("/v1/diagnostics", params={"tenant_id": "t1"}, headers=admin)
    assert diagnostics.status_code == 200, diagnostics.text
    checks = {c["resource_kind"]: c for c in diagnostics.json()["checks"]}
    for kind in ("event_spine", "memory_store"):
        assert (checks[kind]["status"], checks[kind]["error_code"]) == ("unreachable", "secret.unavailable")
    assert "not-base64" not in diagnostics.text
    assert client.get("/v1/events", headers=headers).status_code == 503


def test_a_routed_view_store_that_does_not_answer_at_startup_never_keeps_the_service_from_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart looks into every routed view store for the views to resume; one that does not
    answer (here: nothing listens at its address) is skipped with a warning, the service starts,
    and that tenant's reads of the store answer 503 while the others' work."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    with socket.socket() as closed:  # a port nothing listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = Settings(data_dir=tmp_path, bootstrap_key=BOOTSTRAP_KEY)
    with TestClient(create_app(config)) as client:
        headers = provision_sync(client)
        others = provision_sync(client, tenant="t2")
        assert client.put("/v1/memory/goal", json={"value": "ship"}, headers=others).status_code == 200
        route = {"resource_kind": "memory_store", "tenant_id": "t1", "env": "dev", "project_id": "p1",
                 "backend_type": "dynamodb", "config": {"table": "spine-gone", "region": "us-east-1",
                 "endpoint_url": f"http://127.0.0.1:{port}", **FAST}}  # fmt: skip
        assert client.put("/v1/routes", json=route, headers=admin_headers_sync(client)).status_code == 200
    with TestClient(create_app(config)) as client:
        assert client.get("/health").status_code == 200
        refused = client.get("/v1/memory/goal", headers=headers)
        assert refused.status_code == 503
        # DynamoDB's view store names itself in the code (`view_store.`), not the resource kind
        assert refused.json()["error_code"].endswith(".backend_unavailable")
        assert client.get("/v1/memory/goal", headers=others).json()["value"] == "ship"

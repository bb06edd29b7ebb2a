"""Slow clients and concurrency caps, against uvicorn configured as `spine serve` configures it.

Raw sockets play the slow clients. Timeouts are set to about a second; every wait on the server
is a read until the connection ends, bounded by `SAFETY_SECONDS`, which only a server that never
cuts the client reaches: no outcome depends on how fast the server is.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest

from app.http.connections import MAX_HEAD_BYTES
from app.settings import Settings
from tests.http.conftest import LiveServer, start_live_server
from tests.provision import provision_sync

SAFETY_SECONDS = 30.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, header_timeout_seconds=1.0, body_timeout_seconds=1.0)


Serve = Callable[..., LiveServer]


@pytest.fixture
def serve(settings: Settings) -> Iterator[Serve]:
    """Starts a live server with these settings changed; stops it after the test."""
    servers: list[LiveServer] = []

    def start(**changes: object) -> LiveServer:
        live = start_live_server(msgspec.structs.replace(settings, **changes))
        servers.append(live)
        return live

    yield start
    for live in servers:
        live.server.should_exit = True
        live.thread.join(timeout=10)


def connect(live: LiveServer) -> socket.socket:
    url = urlsplit(live.url)
    return socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=SAFETY_SECONDS)


def head(method: str, path: str, headers: dict[str, str], *, content_length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: spine", *(f"{k}: {v}" for k, v in headers.items())]
    if content_length is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {content_length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection; fails at the deadline."""
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the server kept the connection open (received {received[:200]!r})")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # the loop fails on the deadline
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def stalled_body(live: LiveServer, headers: dict[str, str]) -> socket.socket:
    """An append that announces 500 bytes of body and sends 2."""
    sock = connect(live)
    sock.sendall(head("POST", "/v1/events", headers, content_length=500) + b'{"')
    return sock


def poll(until: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Waits for a condition the server reaches on its own, bounded."""
    deadline = time.monotonic() + seconds
    while not until():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s")
        time.sleep(0.02)


@contextmanager
def client_of(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=SAFETY_SECONDS) as http:
        yield http


def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(serve: Serve) -> None:
    live = serve()
    with client_of(live) as http:
        headers = provision_sync(http)
    with stalled_body(live, headers) as sock:
        answer = read_until_closed(sock, time.monotonic() + SAFETY_SECONDS)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), answer
    assert b"connection: close" in rest.lower()
    assert msgspec.json.decode(rest.partition(b"\r\n\r\n")[2])["error_code"] == "request.timeout"


def test_a_request_head_sent_halfway_is_cut(serve: Serve) -> None:
    live = serve()
    with connect(live) as sock:
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: spine\r\nAuthori")
        assert read_until_closed(sock, time.monotonic() + SAFETY_SECONDS) == b""


def test_a_connection_that_never_sends_is_cut(serve: Serve) -> None:
    live = serve()
    with connect(live) as sock:
        assert read_until_closed(sock, time.monotonic() + SAFETY_SECONDS) == b""


def test_the_next_request_on_a_kept_alive_connection_has_its_own_head_deadline(serve: Serve) -> None:
    live = serve()
    with connect(live) as sock:
        sock.sendall(head("GET", "/health", {}))
        first = b""
        while not first.endswith(b'{"status":"ok"}'):  # the whole answer; the socket times out if not
            first += sock.recv(65536)
        # The connection is kept alive for another request: its head starts, then stalls.
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        assert read_until_closed(sock, time.monotonic() + SAFETY_SECONDS) == b""
    assert first.startswith(b"HTTP/1.1 200")


def test_an_oversized_request_head_is_431(serve: Serve) -> None:
    live = serve()
    with connect(live) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: spine\r\nX-Padding: " + b"a" * MAX_HEAD_BYTES + b"\r\n")
        answer = read_until_closed(sock, time.monotonic() + SAFETY_SECONDS)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert msgspec.json.decode(answer.partition(b"\r\n\r\n")[2])["error_code"] == "request.head_too_large"


def test_a_hundred_stalled_sockets_are_all_cut_and_others_are_served_meanwhile(serve: Serve) -> None:
    live = serve()
    with client_of(live) as http, ExitStack() as stack:
        headers = provision_sync(http)
        stalled = []
        for i in range(100):
            if i % 2:
                stalled.append(stack.enter_context(stalled_body(live, headers)))
            else:
                sock = stack.enter_context(connect(live))
                sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: spine\r\nContent-Le")
                stalled.append(sock)

        served = http.get("/v1/events", headers=headers)
        assert served.status_code == 200, served.text

        deadline = time.monotonic() + SAFETY_SECONDS
        answers = [read_until_closed(sock, deadline) for sock in stalled]
    assert all(a == b"" for a in answers[::2])
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers[1::2])


def test_a_third_follower_of_a_tenant_is_429_until_one_leaves(serve: Serve) -> None:
    live = serve(max_followers_per_tenant=2)
    with client_of(live) as http, ExitStack() as stack:
        tenant_a = provision_sync(http, tenant="ta")
        tenant_b = provision_sync(http, tenant="tb")

        def follow(headers: dict[str, str]) -> httpx.Response:
            return stack.enter_context(http.stream("GET", "/v1/events/stream", headers=headers))

        first, second = follow(tenant_a), follow(tenant_a)
        assert (first.status_code, second.status_code) == (200, 200)

        with http.stream("GET", "/v1/events/stream", headers=tenant_a) as refused:
            assert refused.status_code == 429  # else an endless stream: not read
            refused.read()
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["error_code"] == "concurrency.too_many_followers"
        assert refused.json()["limit"] == 2

        assert follow(tenant_b).status_code == 200  # another tenant's slots are its own

        first.close()  # the client goes away; its slot comes back once the server has noticed

        def a_follower_is_let_in() -> bool:
            with http.stream("GET", "/v1/events/stream", headers=tenant_a) as response:
                return response.status_code == 200

        poll(a_follower_is_let_in, "a new follower of tenant ta being let in")


def test_a_follower_refused_by_an_error_gives_its_slots_back(serve: Serve) -> None:
    live = serve(max_followers_per_tenant=1, max_requests_per_tenant=1)
    with client_of(live) as http:
        headers = provision_sync(http)
        for _ in range(3):  # each 400 would leak both slots, and the next ask would be 429
            bad_cursor = http.get("/v1/events/stream", params={"after": "999"}, headers=headers)
            assert bad_cursor.json()["error_code"] == "cursor.invalid"
        with http.stream("GET", "/v1/events/stream", headers=headers) as follower:
            assert follower.status_code == 200
            refused = http.get("/v1/events", headers=headers)
            assert refused.json()["error_code"] == "concurrency.too_many_requests"


def test_requests_in_flight_are_capped_per_tenant(serve: Serve) -> None:
    """Followers are requests in flight too: two of them fill a cap of two."""
    live = serve(max_requests_per_tenant=2)
    with client_of(live) as http, ExitStack() as stack:
        tenant_a = provision_sync(http, tenant="ta")
        tenant_b = provision_sync(http, tenant="tb")
        first = stack.enter_context(http.stream("GET", "/v1/events/stream", headers=tenant_a))
        stack.enter_context(http.stream("GET", "/v1/events/stream", headers=tenant_a))

        refused = http.get("/v1/events", headers=tenant_a)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error_code"] == "concurrency.too_many_requests"
        assert http.get("/v1/events", headers=tenant_b).status_code == 200

        first.close()
        poll(lambda: http.get("/v1/events", headers=tenant_a).status_code == 200, "a request let in again")


def test_over_the_connection_cap_the_answer_is_503_with_retry_after(serve: Serve) -> None:
    live = serve(max_connections=4, header_timeout_seconds=SAFETY_SECONDS)
    with ExitStack() as stack:
        idle = [stack.enter_context(connect(live)) for _ in range(3)]
        with connect(live) as sock:
            sock.sendall(head("GET", "/health", {}))
            answer = read_until_closed(sock, time.monotonic() + SAFETY_SECONDS)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: 1" in answer.lower()
        problem = msgspec.json.decode(answer.partition(b"\r\n\r\n")[2])
        assert problem["error_code"] == "concurrency.too_many_connections"

        for sock in idle:
            sock.close()
        with client_of(live) as http:
            poll(lambda: http.get("/health").status_code == 200, "a connection let in again")

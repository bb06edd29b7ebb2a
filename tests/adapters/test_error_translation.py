"""Each cloud adapter's one translation of its SDK's errors, at the adapter's edge: whatever the SDK
or the network under it raises comes out as `BackendUnavailable` (or the domain error it means),
within the call's `request_timeout_seconds`, and never quotes the SDK's text or a key.

No peer is needed: the SDK call is replaced by one that raises, exactly where the adapter makes it.
"""

from __future__ import annotations

import binascii
from typing import Any

import aiohttp
import anyio
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

from adapters.cosmos.client import CosmosContainer, cosmos_options
from adapters.cosmos.spine import CosmosSpine
from adapters.dynamodb.table import DynamoTable, dynamodb_options
from adapters.firestore.client import Retrying
from domain.errors import BackendUnavailable, SecretUnavailable
from domain.timeouts import Timeouts

QUICK = Timeouts(connect=0.1, request=0.3)
NETWORK = [
    OSError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    aiohttp.ClientConnectionError("refused"),
    aiohttp.ServerTimeoutError("timed out"),
]


class _RaisingClient:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    async def get_item(self, **_: Any) -> Any:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {
                "Error": {"Code": "AccessDeniedException", "Message": "secret-ish text"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "GetItem",
        ),
        ClientError(
            {
                "Error": {"Code": "ThrottlingException", "Message": "slow down"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            },
            "GetItem",
        ),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        NoCredentialsError(),
        *NETWORK,
    ],
    ids=type,
)
async def test_dynamodb_errors_are_backend_unavailable_within_the_request_timeout(
    error: BaseException,
) -> None:
    table = DynamoTable("t", kind="memory_store", region="us-east-1", timeouts=QUICK)
    table._client = _RaisingClient(error)
    with anyio.fail_after(5), pytest.raises(BackendUnavailable) as caught:
        await table.get("pk", "sk")
    assert caught.value.error_code == "memory_store.backend_unavailable"
    assert "secret-ish" not in caught.value.message


@pytest.mark.parametrize(
    "error",
    [
        HttpResponseError(message="bad gateway"),
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset"),
        CosmosHttpResponseError(status_code=503, message="unavailable"),
        CosmosHttpResponseError(status_code=401, message="the key is wrong"),
        binascii.Error("Incorrect padding"),
        *NETWORK,
    ],
    ids=type,
)
async def test_cosmos_errors_are_backend_unavailable_within_the_request_timeout(error: BaseException) -> None:
    container = CosmosContainer(
        "event_spine", endpoint="http://127.0.0.1:9/", database="d", container="c", key="a2V5", timeouts=QUICK
    )

    async def operation() -> None:
        raise error

    with anyio.fail_after(5), pytest.raises(BackendUnavailable) as caught:
        await container.call(operation)
    assert caught.value.error_code == "event_spine.backend_unavailable"


async def test_a_cosmos_call_that_never_answers_ends_at_the_request_timeout() -> None:
    container = CosmosContainer(
        "event_spine", endpoint="http://127.0.0.1:9/", database="d", container="c", key="a2V5", timeouts=QUICK
    )
    with anyio.fail_after(5), pytest.raises(BackendUnavailable, match=r"within 0\.3s"):
        await container.call(anyio.sleep_forever)


async def test_a_cosmos_key_that_is_not_base64_is_refused_before_any_request() -> None:
    with pytest.raises(SecretUnavailable) as refused:
        cosmos_options({"endpoint": "http://127.0.0.1:9/", "database": "d", "key": "secret://env/K"},
                       "not-base64!!", container="c")  # fmt: skip
    assert refused.value.error_code == "secret.unavailable"
    assert refused.value.ref == "secret://env/K"
    assert "not-base64" not in refused.value.message
    # the adapter itself, given such a key directly: the same refusal as the SDK's, translated
    with anyio.fail_after(5), pytest.raises(BackendUnavailable) as caught:
        async with CosmosSpine(endpoint="http://127.0.0.1:9/", database="d", key="not-base64!!"):
            pass
    assert "not-base64" not in caught.value.message


@pytest.mark.parametrize(
    "error",
    [
        google_errors.ServiceUnavailable("unavailable"),
        google_errors.DeadlineExceeded("deadline"),
        google_errors.PermissionDenied("denied"),
        google_errors.RetryError("retries exhausted", cause=google_errors.ServiceUnavailable("x")),
        DefaultCredentialsError("no credentials"),
        grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata()),
        *(e for e in NETWORK if not isinstance(e, aiohttp.ClientError)),  # gRPC: no aiohttp under it
    ],
    ids=type,
)
async def test_firestore_errors_are_backend_unavailable_within_the_request_timeout(
    error: BaseException,
) -> None:
    retrying = Retrying("blackboard_store", seconds=0.3, attempt_seconds=0.3)

    async def attempt() -> None:
        raise error

    with anyio.fail_after(5), pytest.raises(BackendUnavailable) as caught:
        await retrying.run(attempt)
    assert caught.value.error_code == "blackboard_store.backend_unavailable"


async def test_a_firestore_attempt_that_never_answers_ends_at_the_request_timeout() -> None:
    retrying = Retrying("event_spine", seconds=0.3, attempt_seconds=0.3)
    with anyio.fail_after(5), pytest.raises(BackendUnavailable):
        await retrying.run(anyio.sleep_forever)


def test_route_timeouts_reach_the_adapters() -> None:
    config = {"table": "t", "region": "r", "connect_timeout_seconds": 0.5, "request_timeout_seconds": 2}
    assert dynamodb_options(config)["timeouts"] == Timeouts(connect=0.5, request=2)
    assert dynamodb_options({"table": "t", "region": "r"})["timeouts"] == Timeouts(connect=2, request=5)
    cosmos = cosmos_options({"endpoint": "e", "database": "d", "key": "r", **config}, "a2V5", container="c")
    assert cosmos["timeouts"] == Timeouts(connect=0.5, request=2)
    table = DynamoTable("t", kind="event_spine", region="r", timeouts=Timeouts(connect=0.5, request=2))
    assert (table._config.connect_timeout, table._config.read_timeout, table.retry_seconds) == (0.5, 2, 2)

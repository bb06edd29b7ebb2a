"""What the Cosmos DB spine and view store share: opening a container, retries, error translation.

Both adapters keep their items in one container partitioned by `/partition`. Transient failures
(throttling 429, timeouts, 5xx, dropped connections) are retried here with backoff, on top of the
SDK's own few retries, while the call's budget lasts; what still fails becomes
`BackendUnavailable` (503 with Retry-After), whose message names the failure's type and status,
never a key or a token.

Timeouts (`domain.timeouts`): the client connects within `connect_timeout_seconds` and
waits for a response at most `request_timeout_seconds`; one `call`, its retries and the SDK's
included, ends within `request_timeout_seconds` (the SDK's defaults would wait minutes on an
account that accepts connections and never answers).

Error translation (`translate_errors`): Azure's errors (`AzureError`: HTTP answers, requests
that could not be sent or whose answer did not come), aiohttp's and the socket's, and an account
key that is not base64 (the SDK decodes it when it signs the first request) all become
`BackendUnavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import aiohttp
import anyio
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import AioHttpTransport
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient
from azure.cosmos.exceptions import CosmosBatchOperationError, CosmosHttpResponseError

from domain.errors import BackendUnavailable, SecretUnavailable
from domain.timeouts import Timeouts, timeouts_of

log = logging.getLogger(f"spine.{__name__}")

T = TypeVar("T")
Item = dict[str, Any]

PARTITION_PATH = "/partition"
# Worth another try: throttled, timed out, gone/retry-with, and the server-side 5xx family.
_TRANSIENT = frozenset({408, 410, 429, 449, 500, 502, 503, 504})
_ATTEMPTS = 4
_BACKOFF = 0.05  # seconds, doubled per attempt, with jitter
_MIN_ATTEMPT_SECONDS = 0.05
# No answer at all: refused, reset, timed out (aiohttp's and the socket's own, should the SDK let
# one through untranslated).
_NO_ANSWER = (AzureError, aiohttp.ClientError, OSError)


class CosmosContainer:
    """One container of one database, opened with `async with`; the adapters' only way in.

    `endpoint_discovery` defaults to on for `https://` endpoints and off for `http://` ones: a
    local emulator advertises https locations it does not serve.
    """

    def __init__(
        self,
        kind: str,
        *,
        endpoint: str,
        database: str,
        container: str,
        key: str,
        endpoint_discovery: bool | None = None,
        excluded_paths: tuple[str, ...] = (),
        timeouts: Timeouts | None = None,
    ) -> None:
        self.kind = kind
        self.database = database
        self.name = container
        self._endpoint = endpoint
        self._key = key
        self.timeouts = timeouts or Timeouts()
        self._discovery = (
            urlsplit(endpoint).scheme == "https" if endpoint_discovery is None else endpoint_discovery
        )
        self._excluded_paths = excluded_paths
        self._client: CosmosClient | None = None
        self._container: ContainerProxy | None = None

    @property
    def proxy(self) -> ContainerProxy:
        if self._container is None:
            raise BackendUnavailable(self.kind, f"the {self.kind} store is not open")
        return self._container

    async def __aenter__(self) -> CosmosContainer:
        with translate_errors(self.kind, "could not be opened"):
            check_key(self._key)
            client = self._client_for()
        self._client = client
        try:
            await self.call(client.__aenter__)
            database = await self.call(client.create_database_if_not_exists, self.database)
            policy = {
                "indexingMode": "consistent",
                "includedPaths": [{"path": "/*"}],
                "excludedPaths": [{"path": '/"_etag"/?'}, *({"path": p} for p in self._excluded_paths)],
            }
            self._container = await self.call(
                database.create_container_if_not_exists,
                self.name,
                partition_key=PartitionKey(PARTITION_PATH),
                indexing_policy=policy,
            )
            properties = await self.call(self.proxy.read)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        paths = (properties.get("partitionKey") or {}).get("paths")
        if paths != [PARTITION_PATH]:
            await self.__aexit__(None, None, None)
            raise BackendUnavailable(
                self.kind, f"container {self.name!r} is partitioned by {paths}, not [{PARTITION_PATH!r}]"
            )
        return self

    def _client_for(self) -> CosmosClient:
        timeouts = self.timeouts
        return CosmosClient(
            self._endpoint,
            credential=self._key,
            enable_endpoint_discovery=self._discovery,
            # the SDK's own retries stay short: ours below decide when to give up
            retry_total=2,
            retry_backoff_max=1,
            retry_backoff_factor=0.1,
            connection_timeout=timeouts.connect,
            read_timeout=timeouts.request,
            timeout=timeouts.request,  # the SDK's absolute limit per operation, its retries included
            # Proxy settings and netrc are not read from the environment: aiohttp would look them
            # up in a worker thread on every request.
            transport=AioHttpTransport(use_env_settings=False),
        )

    async def __aexit__(self, *exc: object) -> None:
        client, self._client, self._container = self._client, None, None
        if client is not None:
            await client.__aexit__(None, None, None)

    async def call(
        self,
        operation: Callable[..., Awaitable[T]],
        *args: Any,
        passthrough: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> T:
        """Run one request, retrying transient failures while `request_timeout_seconds` lasts;
        statuses in `passthrough` reach the caller."""
        deadline = time.monotonic() + self.timeouts.request
        for attempt in range(_ATTEMPTS):
            last = attempt == _ATTEMPTS - 1
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), _MIN_ATTEMPT_SECONDS)):
                    return await operation(*args, **kwargs)
            except CosmosHttpResponseError as exc:
                if exc.status_code in passthrough:
                    raise
                if exc.status_code not in _TRANSIENT or last:
                    raise self.unavailable(exc) from exc
            except CosmosBatchOperationError as exc:
                if exc.status_code in passthrough:
                    raise
                raise self.unavailable(exc) from exc
            except _NO_ANSWER as exc:  # refused, reset, timed out (our deadline's TimeoutError too)
                if last or time.monotonic() + _BACKOFF * 2**attempt >= deadline:
                    raise self.unavailable(exc, within=self.timeouts.request) from exc
            except (binascii.Error, ValueError) as exc:  # the SDK signing with a key that is no key
                raise self.unavailable(exc) from exc
            if time.monotonic() + _BACKOFF * 2**attempt >= deadline:
                raise BackendUnavailable(
                    self.kind, f"the {self.kind} store kept failing for {self.timeouts.request:g}s"
                )
            await backoff(attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def query(
        self,
        sql: str,
        partition: str,
        params: Mapping[str, object] | None = None,
        *,
        page_size: int | None = None,
    ) -> list[Any]:
        """Every row of a query inside one logical partition (items, or values for `SELECT VALUE`)."""

        async def run() -> list[Any]:
            rows = self.proxy.query_items(
                sql,
                parameters=[{"name": name, "value": value} for name, value in (params or {}).items()],
                partition_key=partition,
                max_item_count=page_size,
            )
            return [row async for row in rows]

        return await self.call(run)

    def unavailable(self, exc: BaseException, *, within: float | None = None) -> BackendUnavailable:
        status = getattr(exc, "status_code", None)
        cause = type(exc).__name__ + (f", status {status}" if status else "")
        # No traceback and no SDK message: those may echo request details; the type and status suffice.
        log.error("cosmos %s error", self.kind, extra={"error": type(exc).__name__, "status": status})
        if within is not None:
            return BackendUnavailable(
                self.kind, f"the {self.kind} store did not answer within {within:g}s ({cause})"
            )
        return BackendUnavailable(self.kind, f"the {self.kind} store is unavailable ({cause})")


def check_key(key: str) -> None:
    """An account key is base64 (the SDK decodes it, as here, to sign each request): `binascii.Error`
    else. Decoded as leniently as the SDK does, so no key it would take is refused."""
    base64.b64decode(key)


@contextmanager
def translate_errors(kind: str, doing: str = "is unavailable") -> Iterator[None]:
    """What the SDK raises outside `CosmosContainer.call` (building a client) as `BackendUnavailable`;
    the message names the error's type only."""
    try:
        yield
    except (*_NO_ANSWER, binascii.Error, ValueError) as exc:
        # no traceback: the SDK's message may echo request details
        log.warning("cosmos %s error", kind, extra={"error": type(exc).__name__})
        raise BackendUnavailable(kind, f"the cosmos {kind} store {doing} ({type(exc).__name__})") from exc


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


async def gather(*aws: Awaitable[T]) -> list[T]:
    """Every result, or the first failure once all have finished: no request outlives its call."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


async def backoff(attempt: int) -> None:
    await anyio.sleep(_BACKOFF * 2**attempt * (0.5 + random.random()))  # noqa: S311


def cosmos_options(config: Mapping[str, object], key: str, *, container: str) -> dict[str, Any]:
    """A route's config (`{"endpoint", "database", "container"?, "key": "secret://…",
    "connect_timeout_seconds"?, "request_timeout_seconds"?}`) as the adapters' keyword arguments,
    with the key already resolved and `container` as the default.

    A resolved key that is not base64 is no account key: `SecretUnavailable` naming the reference
    (never the value), before any client is built."""
    try:
        check_key(key)
    except binascii.Error:
        raise SecretUnavailable(
            str(config["key"]), "its value is not a base64 Cosmos DB account key"
        ) from None
    return {
        "endpoint": str(config["endpoint"]),
        "database": str(config["database"]),
        "container": str(config.get("container", container)),
        "key": key,
        "timeouts": timeouts_of(config),
    }

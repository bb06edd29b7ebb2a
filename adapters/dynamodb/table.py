"""One DynamoDB table as Spine's DynamoDB adapters use it: a client, retries, errors translated.

Every call goes through `DynamoTable.call`, which retries what DynamoDB says is worth retrying
(throttling, 5xx, a transaction that collided with another one, a connection that dropped or
timed out) with jittered exponential backoff for up to `retry_seconds` (the route's
`request_timeout_seconds`), each attempt bounded by what is left of it, then raises
`BackendUnavailable(kind)`. The client connects within `connect_timeout_seconds` and waits for an
answer at most `request_timeout_seconds` (`domain.timeouts`), so an unreachable table
fails in seconds.
Transactions carry a `ClientRequestToken`, so retrying one whose answer was lost cannot apply it
twice. Failed conditions are no error here: they come back as `ConditionFailed` or `Cancelled`
for the adapter to decide. Messages name DynamoDB's error code, never its text (which may quote
keys or account details).

The table has a string hash key `pk` and a string range key `sk`; `create=True` creates it
on-demand (PAY_PER_REQUEST) when missing, for labs and tests: production tables are provisioned.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from types import TracebackType
from typing import Any

import aioboto3  # type: ignore[import-untyped]
import aiohttp
import anyio
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from domain.errors import BackendUnavailable
from domain.timeouts import Timeouts, timeouts_of

log = logging.getLogger(f"spine.{__name__}")

Item = dict[str, Any]
Key = tuple[str, str]

_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "TransactionConflictException",
        "LimitExceededException",
    }
)
# Cancellation reasons that say "try again", as opposed to a condition that does not hold.
_RETRYABLE_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
_BACKOFF_FIRST = 0.02
_MIN_ATTEMPT_SECONDS = 0.05
_BACKOFF_MAX = 1.0


class ConditionFailed(Exception):
    """A single write's `ConditionExpression` did not hold."""


class Cancelled(Exception):
    """A transaction was cancelled because conditions did not hold; `failed` are their indexes."""

    def __init__(self, failed: list[int]) -> None:
        super().__init__(f"transaction cancelled: conditions failed on items {failed}")
        self.failed = failed


class _Retry(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def s(value: str) -> Item:
    return {"S": value}


def n(value: int | float) -> Item:
    return {"N": str(value)}


def b(value: bytes) -> Item:
    return {"B": value}


def key(pk: str, sk: str) -> Item:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def key_of(item: Item) -> Key:
    return item["pk"]["S"], item["sk"]["S"]


class DynamoTable:
    """`async with DynamoTable(...) as table:` opens the client (and creates the table if asked)."""

    def __init__(
        self,
        name: str,
        *,
        kind: str,
        region: str,
        endpoint_url: str | None = None,
        session: aioboto3.Session | None = None,
        create: bool = False,
        timeouts: Timeouts | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self._region = region
        self._endpoint_url = endpoint_url
        self._session = session
        self._create = create
        self.timeouts = timeouts or Timeouts()
        self.retry_seconds = self.timeouts.request if retry_seconds is None else retry_seconds
        # Our own loop retries, so the SDK does not (its retries would multiply ours).
        self._config = Config(
            connect_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.request,
            retries={"total_max_attempts": 1},
        )
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> DynamoTable:
        session = self._session if self._session is not None else aioboto3.Session()
        with self._translate():
            self._client = await self._stack.enter_async_context(
                session.client(
                    "dynamodb", region_name=self._region, endpoint_url=self._endpoint_url, config=self._config
                )
            )
        try:
            await self._ensure_table()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client = None
        await self._stack.aclose()

    async def call(self, operation: str, **kwargs: Any) -> Item:
        """One API call with `TableName` filled in (where the operation takes one), retried."""
        if operation not in {"transact_write_items", "batch_get_item", "batch_write_item"}:
            kwargs.setdefault("TableName", self.name)
        deadline = time.monotonic() + self.retry_seconds
        delay = _BACKOFF_FIRST
        while True:
            if self._client is None:
                raise BackendUnavailable(self.kind, f"the {self.kind} table {self.name!r} is not open")
            try:
                # each attempt within what is left of the budget (at least a moment to try)
                async with asyncio.timeout(max(deadline - time.monotonic(), _MIN_ATTEMPT_SECONDS)):
                    with self._translate():
                        answer: Item = await getattr(self._client, operation)(**kwargs)
                        return answer
            except TimeoutError:
                raise BackendUnavailable(
                    self.kind, f"DynamoDB did not answer within {self.retry_seconds:g}s"
                ) from None
            except _Retry as retry:
                if time.monotonic() + delay > deadline:
                    raise BackendUnavailable(
                        self.kind, f"DynamoDB kept answering {retry.code} for {self.retry_seconds:g}s"
                    ) from retry
                log.debug("retrying %s after %s", operation, retry.code)
                await anyio.sleep(random.uniform(delay / 2, delay))  # noqa: S311
                delay = min(delay * 2, _BACKOFF_MAX)

    async def transact(self, items: Sequence[Item], token: str) -> None:
        """`TransactWriteItems`; raises `Cancelled` when conditions fail. `token` makes retries safe."""
        await self.call("transact_write_items", TransactItems=list(items), ClientRequestToken=token)

    async def get(self, pk: str, sk: str, *, projection: str | None = None) -> Item | None:
        kwargs: Item = {"Key": key(pk, sk), "ConsistentRead": True}
        if projection is not None:
            kwargs["ProjectionExpression"] = projection
        answer = await self.call("get_item", **kwargs)
        item: Item | None = answer.get("Item")
        return item

    async def get_many(self, keys: Sequence[Key]) -> dict[Key, Item]:
        """Strongly consistent `BatchGetItem` of any number of keys (100 per request, in parallel)."""
        unique = list(dict.fromkeys(keys))
        found: dict[Key, Item] = {}

        async def batch(part: list[Key]) -> None:
            request: Item = {self.name: {"Keys": [key(pk, sk) for pk, sk in part], "ConsistentRead": True}}
            delay = _BACKOFF_FIRST
            while request:
                answer = await self.call("batch_get_item", RequestItems=request)
                for item in answer.get("Responses", {}).get(self.name, []):
                    found[key_of(item)] = item
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    await anyio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)

        await asyncio.gather(*(batch(unique[i : i + 100]) for i in range(0, len(unique), 100)))
        return found

    async def query_all(self, **kwargs: Any) -> list[Item]:
        """Every item a `Query` matches, following `LastEvaluatedKey`."""
        items: list[Item] = []
        while True:
            answer = await self.call("query", ConsistentRead=True, **kwargs)
            items.extend(answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last

    async def delete_many(self, keys: Sequence[Key], *, parallel: int = 16) -> None:
        """Unconditional deletes, 25 per `BatchWriteItem`, a few requests in flight at once."""
        unique = list(dict.fromkeys(keys))
        limit = anyio.Semaphore(parallel)

        async def batch(part: list[Key]) -> None:
            request: Item = {self.name: [{"DeleteRequest": {"Key": key(pk, sk)}} for pk, sk in part]}
            delay = _BACKOFF_FIRST
            async with limit:
                while request:
                    answer = await self.call("batch_write_item", RequestItems=request)
                    request = answer.get("UnprocessedItems") or {}
                    if request:
                        await anyio.sleep(delay)
                        delay = min(delay * 2, _BACKOFF_MAX)

        await asyncio.gather(*(batch(unique[i : i + 25]) for i in range(0, len(unique), 25)))

    async def _ensure_table(self) -> None:
        if not self._create:
            return
        try:
            await self.call("describe_table")  # retried and translated like every call
        except BackendUnavailable as exc:
            cause = exc.__cause__
            missing = isinstance(cause, ClientError) and _code(cause) == "ResourceNotFoundException"
            if not missing:
                raise
        else:
            return
        try:
            await self.call(
                "create_table",
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except BackendUnavailable as exc:
            if "ResourceInUseException" not in exc.message:  # another process created it meanwhile
                raise
        deadline = time.monotonic() + 60
        while (await self.call("describe_table"))["Table"]["TableStatus"] != "ACTIVE":
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    self.kind, f"the {self.kind} table {self.name!r} did not become active"
                )
            await anyio.sleep(0.2)

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed from exc
            if code == "TransactionCanceledException":
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                failed = [i for i, reason in enumerate(reasons) if reason == "ConditionalCheckFailed"]
                if failed:
                    raise Cancelled(failed) from exc
                retryable = [r for r in reasons if r in _RETRYABLE_REASONS]
                if retryable:
                    raise _Retry(retryable[0]) from exc
                others = sorted({r for r in reasons if r != "None"})
                raise BackendUnavailable(
                    self.kind, f"DynamoDB cancelled the transaction ({', '.join(others) or code})"
                ) from exc
            if code in _RETRYABLE or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise _Retry(code) from exc
            log.warning("dynamodb error", extra={"error": code, "table": self.name})
            raise BackendUnavailable(self.kind, f"DynamoDB answered {code} for table {self.name!r}") from exc
        except BotoCoreError as exc:  # connection refused or dropped, timeouts, no credentials
            if _is_transient(exc):
                raise _Retry(type(exc).__name__) from exc
            raise BackendUnavailable(
                self.kind, f"DynamoDB is unreachable or misconfigured ({type(exc).__name__})"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:  # what the HTTP stack let through untranslated
            raise _Retry(type(exc).__name__) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "ClientError"))


def _is_transient(exc: BotoCoreError) -> bool:
    """Connection refused, reset or timed out: worth another try (transactions carry a token)."""
    return isinstance(exc, BotoConnectionError | HTTPClientError)


def dynamodb_options(config: Mapping[str, object]) -> dict[str, Any]:
    """A route's config (`{"table", "region", "endpoint_url"?, "create_table"?,
    "connect_timeout_seconds"?, "request_timeout_seconds"?}`) as the adapters' keyword arguments;
    credentials come from the default AWS chain, never from a route."""
    endpoint = config.get("endpoint_url")
    return {
        "table": str(config["table"]),
        "region": str(config["region"]),
        "endpoint_url": None if endpoint is None else str(endpoint),
        "create_table": bool(config.get("create_table", False)),
        "timeouts": timeouts_of(config),
    }

"""The Python client of Spine: `SpineClient` (async) and `SyncSpineClient`, on httpx and msgspec.

    async with SpineClient(URL, token_provider=fetch_token, project_id="p1", surface_id="web") as spine:
        await spine.append("task:42", [{"type": "task.created", "data": {"goal": "ship"}}])
        async with contextlib.aclosing(spine.follow(after=0)) as events:
            async for event in events:  # resumes for ever, with Last-Event-ID
                ...

Each operation is a method of both clients, built once from a function that describes the
request (`_events`, `_views`, `_flags`, `_pages`, `_tables`, `_realtime`, `_objects`, `_records`,
`_control`); the clients differ only in how they send it (and stream an object's bytes themselves:
`put_object` from a file or an iterator, `stream_object`). Any other route is one `request` (the answer) or
`request_json` (its JSON decoded into a type) away.

Errors: a problem answer raises `SpineClientError` (`status`, `error_code`, `message`, `problem`,
`retry_after`); no answer raises `SpineConnectionError` (`SpineTimeoutError` when the timeout
passed first). Connection errors, 429 and, for requests safe to repeat, 502/503/504 are retried
first (`RetryPolicy`); a 401 asks the `token_provider`, if any, for a fresh token once.
"""

from spine_client._async import SpineClient
from spine_client._retry import NO_RETRY, RetryPolicy
from spine_client._sync import SyncSpineClient
from spine_client._version import VERSION
from spine_client.errors import SpineClientError, SpineConnectionError, SpineTimeoutError
from spine_client.types import AppendResult, Event, EventMeta, ExpectedVersion, NewEvent, Page, StreamPage

__version__ = VERSION

__all__ = [
    "NO_RETRY",
    "AppendResult",
    "Event",
    "EventMeta",
    "ExpectedVersion",
    "NewEvent",
    "Page",
    "RetryPolicy",
    "SpineClient",
    "SpineClientError",
    "SpineConnectionError",
    "SpineTimeoutError",
    "StreamPage",
    "SyncSpineClient",
    "__version__",
]

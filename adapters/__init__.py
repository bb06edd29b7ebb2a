"""One package per backend (`memory`, `sqlite`, `dynamodb`, `firestore`, `cosmos`, `redis`, and
the object stores' `s3`, `azure_blob`, `filesystem`), each implementing the ports it serves (event
spine, view store, notifier, rate limiter, object store); beside them what they share: the
group-commit tail, decoded reads, the in-process notifier, JWT tokens, the secret resolver and
an upload's parts (`blob_parts`). SDKs are imported here and nowhere closer to the domain.

Concurrency is anyio's (sleeps, semaphores, task groups) except where an adapter meets its SDK's
own asyncio API: group-commit callers wait on `asyncio.Future`s that the writer task resolves
(the SDKs' clients live on that loop anyway), `asyncio.timeout` bounds one SDK call, and
`asyncio.gather` runs SDK calls side by side so that the first failure arrives as the SDK's own
exception, which each adapter's error translation reads (a task group would wrap it in an
`ExceptionGroup`)."""

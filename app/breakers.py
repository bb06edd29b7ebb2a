"""A circuit breaker around every opened backend, and the last line of its error translation.

`Backends` gives each backend it opens one `Guard` (per port: its event spine, its view store),
and every call to the adapter, its opening included, goes through `Guard.call`:

- while the breaker is open, the call is refused at once with `BackendUnavailable(kind)` whose
  `retry_after` is the time left until the next probe (the answer's `Retry-After`);
- `BackendUnavailable` and `SecretUnavailable` from the adapter count as failures; any other
  Spine error means the backend answered (a version conflict is an answer) and counts as success;
- any other exception is a backend failure no adapter translated (an SDK error of a kind nobody
  expected, a driver bug): it counts as a failure and becomes `BackendUnavailable(kind)`, so no
  backend exception reaches a client as a 500. Logged with its type and where it was raised,
  never its message (an SDK's message may quote a key or a request).

Embedded stores (SQLite, memory) get the translation without a breaker: they never make a caller
wait on a network, and refusing the lab store (also the control plane) for a cool-down after a
few busy-file errors would take the whole service down for nothing.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from domain.circuit_breaker import Admission, BreakerStatus, CircuitBreaker
from domain.errors import BackendUnavailable, SecretUnavailable, SpineError
from domain.ports import ViewStore
from domain.views import Generations, ViewDoc, ViewOp

log = logging.getLogger(f"spine.{__name__}")

T = TypeVar("T")

_FAILURES = (BackendUnavailable, SecretUnavailable)


class Guard:
    """One backend's breaker (None: translation only); `kind` names the resource in the errors it
    raises itself."""

    def __init__(self, kind: str, backend_type: str, breaker: CircuitBreaker | None) -> None:
        self.kind = kind
        self.backend_type = backend_type
        self.breaker = breaker

    def status(self) -> BreakerStatus | None:
        return None if self.breaker is None else self.breaker.status()

    def check(self, kind: str | None = None) -> None:
        """Refuse at once (as `kind`) while the breaker is open; admits nothing."""
        retry_after = None if self.breaker is None else self.breaker.refusal()
        if retry_after is not None:
            raise self._refused(kind or self.kind, retry_after)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        breaker = self.breaker
        admission = _ALWAYS if breaker is None else breaker.admit()
        if not admission.allowed:
            raise self._refused(self.kind, admission.retry_after)
        try:
            result = await operation()
        except _FAILURES:
            if breaker is not None:
                breaker.failed(admission)
            raise
        except (SpineError, RecursionError):
            # An answer: a refusal, or a stored document too deep to decode (older versions could
            # write them), which the error mapping answers as unreadable, not as a dead backend.
            if breaker is not None:
                breaker.succeeded(admission)
            raise
        except Exception as exc:
            if breaker is not None:
                breaker.failed(admission)
            raise self._untranslated(exc) from exc
        except BaseException:  # cancelled: the backend said nothing either way
            if breaker is not None:
                breaker.abandoned(admission)
            raise
        if breaker is not None:
            breaker.succeeded(admission)
        return result

    def _untranslated(self, exc: Exception) -> BackendUnavailable:
        frame = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f"{frame[0].filename}:{frame[0].lineno}" if frame else "?"
        log.error(
            "untranslated backend error",
            extra={"kind": self.kind, "backend_type": self.backend_type, "error": type(exc).__name__,
                   "raised_at": where},
        )  # fmt: skip
        return BackendUnavailable(
            self.kind, f"the {self.kind} backend ({self.backend_type}) failed ({type(exc).__name__})"
        )

    def _refused(self, kind: str, retry_after: float | None) -> BackendUnavailable:
        failures = 0 if self.breaker is None else self.breaker.status().failures
        return BackendUnavailable(
            kind,
            f"the {kind} backend ({self.backend_type}) failed {failures} times in a row: "
            "calls are refused until it is probed again",
            retry_after=retry_after,
        )


_ALWAYS = Admission(allowed=True)


# named here: inside the class, `list` is the method
_Known = list[tuple[str, str]]
_Docs = list[ViewDoc]


class GuardedViewStore:
    """A `ViewStore` whose every call goes through its backend's `Guard`."""

    def __init__(self, inner: ViewStore, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard

    @property
    def max_apply_size(self) -> int | None:
        return self.inner.max_apply_size

    def op_size(self, op: ViewOp) -> int:
        return self.inner.op_size(op)

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        return await self.guard.call(lambda: self.inner.get(space, collection, key))

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> _Docs:
        return await self.guard.call(
            lambda: self.inner.list(space, collection, prefix=prefix, after=after, limit=limit)
        )

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        await self.guard.call(lambda: self.inner.apply(space, ops, checkpoint))

    async def checkpoint(self, space: str) -> int:
        return await self.guard.call(lambda: self.inner.checkpoint(space))

    async def drop(self, space: str) -> None:
        await self.guard.call(lambda: self.inner.drop(space))

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        return await self.guard.call(lambda: self.inner.lease(space, holder, seconds))

    async def generations(self, partition_key: str, projection: str) -> Generations:
        return await self.guard.call(lambda: self.inner.generations(partition_key, projection))

    async def set_generations(self, partition_key: str, projection: str, generations: Generations) -> None:
        await self.guard.call(lambda: self.inner.set_generations(partition_key, projection, generations))

    async def known(self) -> _Known:
        return await self.guard.call(self.inner.known)

"""How an operation (a function that builds a `Call`) becomes a method of both clients, typed.

`get_memory = async_method(_views.get_memory)` in `SpineClient` is `async def get_memory(self, key,
*, min_position=None) -> MemoryValue`, and `sync_method` makes the same method of
`SyncSpineClient`: one definition of each operation, its parameters and its docstring.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from spine_client._calls import Call

P = ParamSpec("P")
T = TypeVar("T")


class AsyncRunner(Protocol):
    async def _run(self, call: Call[T]) -> T: ...


class SyncRunner(Protocol):
    def _run(self, call: Call[T]) -> T: ...


def async_method(
    build: Callable[P, Call[T]],
) -> Callable[Concatenate[AsyncRunner, P], Coroutine[Any, Any, T]]:
    @functools.wraps(build)
    async def method(self: AsyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(*args, **kwargs))

    method.__signature__ = _signature(build)  # type: ignore[attr-defined]
    return method


def sync_method(build: Callable[P, Call[T]]) -> Callable[Concatenate[SyncRunner, P], T]:
    @functools.wraps(build)
    def method(self: SyncRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(*args, **kwargs))

    method.__signature__ = _signature(build)  # type: ignore[attr-defined]
    return method


def _signature(build: Callable[..., Any]) -> inspect.Signature:
    """The operation's signature, with `self` first and the answer's type as what it returns."""
    signature = inspect.signature(build)
    answer = str(build.__annotations__.get("return", "")).removeprefix("Call[").removesuffix("]")
    self_ = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[self_, *signature.parameters.values()], return_annotation=answer)

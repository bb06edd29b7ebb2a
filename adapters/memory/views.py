"""In-memory view store for tests and explicit lab use; the same rules as every view store."""

from __future__ import annotations

import time
from collections.abc import Sequence

from domain.views import Delete, Generations, Upsert, ViewDoc, ViewOp

_Known = list[tuple[str, str]]  # named here: inside the class, `list` is the method


class MemoryViewStore:
    """Dicts per space. No method awaits, so the event loop makes each batch atomic."""

    max_apply_size: int | None = None  # any apply is atomic

    def __init__(self) -> None:
        # space -> collection -> key -> (position, data or None for a tombstone)
        self._spaces: dict[str, dict[str, dict[str, tuple[int, dict[str, object] | None]]]] = {}
        self._checkpoints: dict[str, int] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._generations: dict[tuple[str, str], Generations] = {}

    async def get(self, space: str, collection: str, key: str) -> ViewDoc | None:
        stored = self._spaces.get(space, {}).get(collection, {}).get(key)
        if stored is None or stored[1] is None:
            return None
        return ViewDoc(collection=collection, key=key, position=stored[0], data=stored[1])

    async def list(
        self, space: str, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        docs = self._spaces.get(space, {}).get(collection, {})
        keys = sorted(
            key
            for key, (_, data) in docs.items()
            if data is not None and key.startswith(prefix) and key > after
        )
        return [ViewDoc(collection=collection, key=key, position=docs[key][0], data=docs[key][1] or {})
                for key in keys[:limit]]  # fmt: skip

    async def apply(self, space: str, ops: Sequence[ViewOp], checkpoint: int) -> None:
        collections = self._spaces.setdefault(space, {})
        for op in ops:
            docs = collections.setdefault(op.collection, {})
            stored = docs.get(op.key)
            if stored is not None and stored[0] >= op.position:
                continue  # delivered before: nothing to do
            match op:
                case Upsert():
                    docs[op.key] = (op.position, op.data)
                case Delete():
                    docs[op.key] = (op.position, None)
        self._checkpoints[space] = max(self._checkpoints.get(space, 0), checkpoint)

    def op_size(self, op: ViewOp) -> int:
        return 1

    async def checkpoint(self, space: str) -> int:
        return self._checkpoints.get(space, 0)

    async def drop(self, space: str) -> None:
        self._spaces.pop(space, None)
        self._checkpoints.pop(space, None)
        self._leases.pop(space, None)

    async def lease(self, space: str, holder: str, seconds: float) -> bool:
        now = time.monotonic()
        current = self._leases.get(space)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[space] = (holder, now + seconds)
        return True

    async def generations(self, partition_key: str, projection: str) -> Generations:
        return self._generations.get((partition_key, projection), Generations())

    async def set_generations(self, partition_key: str, projection: str, generations: Generations) -> None:
        self._generations[(partition_key, projection)] = generations

    async def known(self) -> _Known:
        return sorted(self._generations)

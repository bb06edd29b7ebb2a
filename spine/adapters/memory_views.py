"""In-memory view store for tests and explicit lab use; the same rules as every view store."""

from __future__ import annotations

from collections.abc import Sequence

from spine.domain.partition import Partition
from spine.domain.views import Delete, Upsert, ViewDoc, ViewOp


class MemoryViewStore:
    """Dicts per partition. `apply` never awaits, so the event loop makes each batch atomic."""

    def __init__(self) -> None:
        # (partition, collection, key) -> (position, data or None for a tombstone)
        self._docs: dict[tuple[str, str, str], tuple[int, dict[str, object] | None]] = {}
        self._checkpoints: dict[tuple[str, str], int] = {}

    async def get(self, partition: Partition, collection: str, key: str) -> ViewDoc | None:
        stored = self._docs.get((partition.key, collection, key))
        if stored is None or stored[1] is None:
            return None
        return ViewDoc(collection=collection, key=key, position=stored[0], data=stored[1])

    async def list(
        self, partition: Partition, collection: str, *, prefix: str = "", after: str = "", limit: int = 100
    ) -> list[ViewDoc]:
        keys = sorted(
            key
            for (pkey, coll, key), (_, data) in self._docs.items()
            if pkey == partition.key and coll == collection and data is not None
            and key.startswith(prefix) and key > after
        )  # fmt: skip
        found = [await self.get(partition, collection, key) for key in keys[:limit]]
        return [doc for doc in found if doc is not None]

    async def apply(
        self, partition: Partition, projection: str, ops: Sequence[ViewOp], checkpoint: int
    ) -> None:
        for op in ops:
            where = (partition.key, op.collection, op.key)
            stored = self._docs.get(where)
            if stored is not None and stored[0] >= op.position:
                continue  # delivered before: nothing to do
            match op:
                case Upsert():
                    self._docs[where] = (op.position, op.data)
                case Delete():
                    self._docs[where] = (op.position, None)
        mark = (partition.key, projection)
        self._checkpoints[mark] = max(self._checkpoints.get(mark, 0), checkpoint)

    async def checkpoint(self, partition: Partition, projection: str) -> int:
        return self._checkpoints.get((partition.key, projection), 0)

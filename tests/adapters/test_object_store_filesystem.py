"""What the lab's filesystem object store does beyond the contract: no name leaves its directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.filesystem.objects import FilesystemObjectStore
from domain.errors import InvalidRequest


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


async def one_chunk() -> AsyncIterator[bytes]:
    yield b"bytes"


@pytest.mark.parametrize(
    "name", ["", "../escape", "a/../../escape", "/absolute", "a//b", "a/./b", "nul\x00", "a/", "x" * 300]
)
async def test_a_name_that_could_leave_the_tree_is_refused(tmp_path: Path, name: str) -> None:
    async with FilesystemObjectStore(tmp_path / "objects") as store:
        with pytest.raises(InvalidRequest):
            await store.put(name, one_chunk(), content_type="text/plain", max_bytes=100)
        with pytest.raises(InvalidRequest):
            await store.head(name)
        with pytest.raises(InvalidRequest):
            await store.read(name)
        with pytest.raises(InvalidRequest):
            await store.delete(name)
    assert files_under(tmp_path) == []


async def test_names_map_to_paths_inside_the_tree(tmp_path: Path) -> None:
    async with FilesystemObjectStore(tmp_path / "objects") as store:
        for name in ["..a/b..", "a/b", "a/b/c", "%2e%2e/x", "a@/b"]:
            await store.put(name, one_chunk(), content_type="text/plain", max_bytes=100)
    assert files_under(tmp_path / "objects/blobs") == [
        "%252e%252e@/x",
        "..a@/b..",
        "a%40@/b",
        "a@/b",
        "a@/b@/c",
    ]

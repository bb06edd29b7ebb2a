"""`Backends` opens each backend once, however its config is spelled."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from adapters.local_notifier import LocalNotifier
from adapters.secret_resolver import ChainSecretResolver
from app.backends import Backends
from app.http.metrics import Metrics
from domain.backend_url import Backend
from domain.secrets import SecretFiles


async def test_one_backend_spelled_two_ways_is_opened_once(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        backends = Backends(
            stack=stack, notifier=LocalNotifier(), metrics=Metrics(), data_dir=tmp_path, synchronous="FULL",
            secrets=ChainSecretResolver(allow_env=False, files=SecretFiles()),
        )  # fmt: skip
        # a URL's config and a route's JSON list the same keys in different orders
        first = await backends.spine(Backend(backend_type="memory", config={"table": "t", "region": "r"}))
        again = await backends.spine(Backend(backend_type="memory", config={"region": "r", "table": "t"}))
        assert first is again
        relative = await backends.spine(Backend(backend_type="sqlite", config={"path": "spine.db"}))
        absolute = await backends.spine(
            Backend(backend_type="sqlite", config={"path": str(tmp_path / "spine.db")})
        )
        assert relative is absolute
        assert (
            await backends.spine(Backend(backend_type="sqlite", config={"path": "other.db"})) is not relative
        )

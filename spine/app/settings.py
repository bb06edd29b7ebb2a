"""Process settings: where the embedded store lives and how the server behaves.

Backend *choice* per tenant is data (the routing registry), never read from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from spine.adapters.sqlite_spine import Synchronous


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path = Path("spine-data")
    # `memory` keeps nothing across restarts: tests and explicit lab use only.
    store: Literal["sqlite", "memory"] = "sqlite"
    sqlite_synchronous: Synchronous = "FULL"
    redis_url: str | None = None
    default_env: str = "dev"
    heartbeat_seconds: float = 15.0
    poll_seconds: float = 2.0
    retry_ms: int = 2000
    max_body_bytes: int = 4 * 1024 * 1024
    ready_timeout_seconds: float = 2.0

    @property
    def spine_path(self) -> Path:
        return self.data_dir / "spine.db"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """`SPINE_<FIELD>` environment variables, then explicit overrides (CLI flags) on top."""
        values: dict[str, object] = {}
        for name in cls.__struct_fields__:
            raw = os.environ.get(f"SPINE_{name.upper()}")
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(values, cls, strict=False)

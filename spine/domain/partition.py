"""Partitions: one totally ordered log per (tenant, env, project)."""

from __future__ import annotations

from typing import Annotated

import msgspec

# Identifiers travel in headers, paths and storage keys: keep them to a safe alphabet so that a
# partition key can never be forged by joining two ids ("a/b" + "c" == "a" + "b/c").
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"
Identifier = Annotated[str, msgspec.Meta(pattern=IDENTIFIER_PATTERN)]

SYSTEM_TENANT = "t_system"
SYSTEM_PROJECT = "_"

_ENV_ALIASES = {"production": "prod", "development": "dev", "stage": "staging"}


def normalize_env(env: str) -> str:
    """Map the spellings people use to the one Spine stores (`production` → `prod`, …)."""
    lowered = env.strip().lower()
    return _ENV_ALIASES.get(lowered, lowered)


class Partition(msgspec.Struct, frozen=True, kw_only=True):
    """The unit of ordering: every event of a partition has one gapless `position` from 1."""

    tenant_id: Identifier
    env: Identifier
    project_id: Identifier

    @property
    def key(self) -> str:
        """A stable storage key; unambiguous because identifiers cannot contain '/'."""
        return f"{self.tenant_id}/{self.env}/{self.project_id}"

    @classmethod
    def from_key(cls, key: str) -> Partition:
        tenant_id, env, project_id = key.split("/")
        return cls(tenant_id=tenant_id, env=env, project_id=project_id)

    @classmethod
    def system(cls, env: str) -> Partition:
        return cls(tenant_id=SYSTEM_TENANT, env=env, project_id=SYSTEM_PROJECT)

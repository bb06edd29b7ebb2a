"""Partitions: one totally ordered log per (tenant, env, project)."""

from __future__ import annotations

import msgspec

from domain.errors import InvalidIdentifier
from domain.identifiers import IDENTIFIER_PATTERN, Identifier, check

__all__ = [
    "IDENTIFIER_PATTERN",
    "SYSTEM_PROJECT",
    "SYSTEM_TENANT",
    "Identifier",
    "Partition",
    "normalize_env",
]

SYSTEM_TENANT = "t_system"
SYSTEM_PROJECT = "_"

_ENV_ALIASES = {"production": "prod", "development": "dev", "stage": "staging"}
# Partitions are built on every request from ids that were checked where they entered: remember
# the last few thousand good ones, so the check costs a set lookup rather than a regex match.
_CHECKED: set[str] = set()
_CHECKED_MAX = 4096


def normalize_env(env: str) -> str:
    """Map the spellings people use to the one Spine stores (`production` → `prod`, …)."""
    lowered = env.strip().lower()
    return _ENV_ALIASES.get(lowered, lowered)


class Partition(msgspec.Struct, frozen=True, kw_only=True):
    """The unit of ordering: every event of a partition has one gapless `position` from 1.

    Its ids are checked however it is made (msgspec checks `Meta` patterns only when decoding),
    so a partition of a malformed id cannot exist: building one raises `InvalidIdentifier` (422).
    """

    tenant_id: Identifier
    env: Identifier
    project_id: Identifier

    def __post_init__(self) -> None:
        if not (self.tenant_id in _CHECKED and self.env in _CHECKED and self.project_id in _CHECKED):
            ids = (
                check("tenant_id", self.tenant_id),
                check("env", self.env),
                check("project_id", self.project_id),
            )
            if len(_CHECKED) >= _CHECKED_MAX:
                _CHECKED.clear()
            _CHECKED.update(ids)

    @property
    def key(self) -> str:
        """A stable storage key; unambiguous because identifiers cannot contain '/'."""
        return f"{self.tenant_id}/{self.env}/{self.project_id}"

    @classmethod
    def from_key(cls, key: str) -> Partition:
        """The partition of a stored key; `InvalidIdentifier` for a key that is not one."""
        parts = key.split("/") if isinstance(key, str) else []
        if len(parts) != 3:
            raise InvalidIdentifier("partition key", "tenant/env/project")
        tenant_id, env, project_id = parts
        return cls(tenant_id=tenant_id, env=env, project_id=project_id)

    @classmethod
    def system(cls, env: str) -> Partition:
        return cls(tenant_id=SYSTEM_TENANT, env=env, project_id=SYSTEM_PROJECT)

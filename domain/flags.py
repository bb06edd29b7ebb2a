"""Feature flags: one versioned definition per key of a project, every change audited.

A flag belongs to the partition (tenant, env, project). Each flag is one stream, `flag:{key}`:
its version is the stream's, a write's `expected_version` is checked by the append on that
stream (never against the view), and a deletion is an event on the same stream, so the version
goes on counting and a later write brings the key back. Every event says why (`reason`); who is
the user of the event's meta (the token's), never a field a client sends.

The rules of a definition live in `FlagSpec` (the body's shape) and `check_values` (every value
of the flag's type). Stored events are read back as `FlagChanged` / `FlagDeleted`, which check
nothing: rules tightened later never stop the projection or an evaluation of older flags.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal

import msgspec

from domain.errors import FlagNotFound, InvalidFlagValue
from domain.events import Event, NewEvent
from domain.flag_evaluation import StoredFlag
from domain.identifiers import FLAG_KEY_PATTERN as FLAG_KEY_PATTERN  # one home
from domain.identifiers import Identifier
from domain.partition import normalize_env
from domain.views import Delete, Upsert, ViewOp

CHANGED: Final = "flag.changed"
DELETED: Final = "flag.deleted"
CURRENT, LIVE, HISTORY = "flags.current", "flags.live", "flags.history"
MAX_RULES, MAX_IDS, MAX_VALUE_BYTES = 100, 1000, 16 * 1024
MAX_REASON, MAX_DESCRIPTION = 500, 1000

FlagType = Literal["bool", "string", "number", "json"]
FlagKey = Annotated[
    str, msgspec.Meta(pattern=FLAG_KEY_PATTERN, description="a flag key: new-checkout, search.v2")
]
Reason = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_REASON, pattern=r"\S", description="why this change")
]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]
Ids = Annotated[list[Identifier], msgspec.Meta(max_length=MAX_IDS)]
Rollout = Annotated[
    float, msgspec.Meta(ge=0, le=100, description="percent of users admitted, 0..100, two decimals at most")
]


class RuleSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A rule as a client writes it: every list given must hold the caller's id, and the rollout
    must admit the caller, for the rule's `value` to answer."""

    envs: Ids | None = None
    surfaces: Ids | None = None
    apps: Ids | None = None
    users: Ids | None = None
    rollout: Rollout | None = None
    value: Any

    def __post_init__(self) -> None:
        # ValueError here is reported by msgspec as a validation error: a 422 naming the rule.
        if self.rollout is not None and not math.isclose(self.rollout * 100, round(self.rollout * 100)):
            raise ValueError(f"rollout has two decimals at most, got {self.rollout}")
        if self.envs is not None:  # as the context does: `production` is `prod`
            msgspec.structs.force_setattr(self, "envs", [normalize_env(env) for env in self.envs])


class FlagSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A flag's whole definition (every write replaces it)."""

    type: FlagType
    default: Any
    enabled: bool = True
    rules: Annotated[list[RuleSpec], msgspec.Meta(max_length=MAX_RULES)] = []
    description: Description | None = None


class FlagChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `flag.changed`: the flag's whole definition as of this version, and why."""

    key: str
    type: str
    default: Any = None
    enabled: bool = True
    rules: list[dict[str, Any]] = []
    description: str | None = None
    reason: str | None = None


class FlagDeleted(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    reason: str | None = None


def stream_of(key: str) -> str:
    return f"flag:{key}"


def history_prefix(key: str) -> str:
    """Keys have no `:`, so no flag's prefix is the start of another's."""
    return f"{key}:"


def history_key(key: str, version: int) -> str:
    return f"{history_prefix(key)}{version:012d}"


def check_values(spec: FlagSpec) -> None:
    """`InvalidFlagValue` naming the first value (`default`, `rules[1].value`) that is not of the
    flag's type or is larger than 16 KiB as JSON."""
    named = [("default", spec.default), *((f"rules[{n}].value", r.value) for n, r in enumerate(spec.rules))]
    for field, value in named:
        if not _of_type(spec.type, value):
            raise InvalidFlagValue(field, f"a {spec.type} flag's values are {_TYPES[spec.type]}")
        size = len(msgspec.json.encode(value))
        if size > MAX_VALUE_BYTES:
            raise InvalidFlagValue(field, f"{size} bytes as JSON, more than {MAX_VALUE_BYTES}")


_TYPES: Final = {
    "bool": "true or false",
    "string": "strings",
    "number": "numbers",
    "json": "any JSON value",
}


def _of_type(flag_type: str, value: Any) -> bool:
    if flag_type == "bool":
        return isinstance(value, bool)
    if flag_type == "string":
        return isinstance(value, str)
    if flag_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return True


def changed_event(key: str, spec: FlagSpec, reason: str) -> NewEvent:
    rules = [msgspec.to_builtins(rule) for rule in spec.rules]
    record = FlagChanged(key=key, type=spec.type, default=spec.default, enabled=spec.enabled,
                         rules=rules, description=spec.description, reason=reason)  # fmt: skip
    return NewEvent(type=CHANGED, data=msgspec.to_builtins(record))


def decide_delete(key: str, last: Event | None, reason: str) -> NewEvent:
    """A deletion of the live flag; `FlagNotFound` when there is none."""
    if last is None:
        raise FlagNotFound(key)
    if last.type == DELETED:
        raise FlagNotFound(key, deleted=True, version=last.version)
    return NewEvent(type=DELETED, data=msgspec.to_builtins(FlagDeleted(key=key, reason=reason)))


def is_live(last: Event) -> bool:
    return last.type == CHANGED


def definition_of(data: dict[str, Any]) -> StoredFlag:
    """A stored definition (an event's data, a view document), read leniently."""
    return msgspec.convert(data, StoredFlag)


class FlagsProjection:
    """Per change: the flag's current document (a tombstone once deleted), its entry in the live
    list (gone once deleted), and its history document. Every document holds the event's whole
    version of the flag, so no op reads another document."""

    name = "flags"
    handles = frozenset({CHANGED, DELETED})
    collections = frozenset({CURRENT, LIVE, HISTORY})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        deleted = event.type == DELETED
        audit = {
            "version": event.version,
            "changed_at": msgspec.to_builtins(event.recorded_at),
            "changed_by": event.meta.user_id,
            "position": event.position,
        }
        if deleted:
            gone = msgspec.convert(event.data, FlagDeleted)
            key, reason, flag = gone.key, gone.reason, None
        else:
            changed = msgspec.convert(event.data, FlagChanged)
            key, reason = changed.key, changed.reason
            flag = {"type": changed.type, "default": changed.default, "enabled": changed.enabled,
                    "rules": changed.rules, "description": changed.description}  # fmt: skip
        current = {"key": key, **(flag or {}), **audit, "reason": reason, "deleted": deleted}
        change = {"key": key, **audit, "reason": reason, "change": "deleted" if deleted else "changed",
                  "flag": flag}  # fmt: skip
        position = event.position
        listed: ViewOp = (
            Delete(collection=LIVE, key=key, position=position)
            if deleted
            else Upsert(collection=LIVE, key=key, data=current, position=position)
        )
        return [
            Upsert(collection=CURRENT, key=key, data=current, position=position),
            listed,
            Upsert(collection=HISTORY, key=history_key(key, event.version), data=change, position=position),
        ]

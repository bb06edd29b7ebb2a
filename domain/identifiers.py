"""Identifiers: every name that becomes part of a storage key, each with its one pattern.

Keys are made by joining names (`t1/dev/p1`, `memory:u1:goal`, `route:memory_store:t1:dev:~`):
each name keeps to an alphabet without the separators `/` and whitespace, starts with a letter,
digit or `_` (so never `.`, `..`, `-x` or `~`), and has a length limit, so that no two different
names can be joined into one key and no key is a path a backend would interpret.

msgspec checks these patterns where it decodes a body or converts a value (the `Annotated` types
below); `check` is the same rule for a value that arrives any other way: a Struct built in code
(`Partition`), a token claim, a stored key. Both raise nothing but a client error (422, or 400
`context.invalid_field` for a header), never a 500.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec

from domain.errors import InvalidIdentifier

# Python's `$` also matches before a final newline; `(?!\n)` refuses "abc\n" the way a JSON
# Schema (ECMA) reader of the same pattern does.
_END: Final = r"$(?!\n)"

IDENTIFIER_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,127}}{_END}"
"""tenant, env, project, surface, app, user and mode ids; event ids and types."""
NAME_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.:@+=~-]{{0,255}}{_END}"
"""memory keys, session ids, blackboard runs and keys, stream names."""
DOCUMENT_ID_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.:@+=~-]{{0,127}}{_END}"
"""save ids and strategy-lock ids."""
PAGE_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.~-]{{0,127}}{_END}"
"""SEO and page-content slugs (`home`, `blog.post-1`): no `:`, they appear in URLs."""
FLAG_KEY_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}{_END}"
"""feature flag keys (`new-checkout`, `search.v2`): no `:` (history keys join a key and a version)
and no `,` (`?keys=` lists them comma-separated)."""
UNIT_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,63}}{_END}"
"""budget units (`tokens`, `usd`)."""
BLOCK_ID_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,63}}{_END}"
"""ids of a page's content blocks (`hero`, `intro-1`): unique within one version of a page."""
BLOCK_TYPE_PATTERN: Final = rf"^[a-z][a-z0-9_-]{{0,63}}{_END}"
"""content block types (`hero`, `text`, `image`, `call-to-action`): lowercase, as renderers name them."""
VIEW_NAME_PATTERN: Final = rf"^[a-z][a-z0-9_.:-]{{0,127}}{_END}"
"""projection (view) names: `memory`, `blackboard`."""
METRIC_NAME_PATTERN: Final = rf"^[a-z][a-z0-9_.:-]{{0,127}}{_END}"
"""KPI names (`checkout.conversion`, `latency:p95`): the alphabet of analytics event names."""
TABLE_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,63}}{_END}"
"""tabular-store table names (`agents`, `config.v2`): one URL path segment, no `:`."""
ROW_KEY_PATTERN: Final = (
    r"^(?!(?:.*/)?versions(?:/|$))(?!.*/(?![A-Za-z0-9_]))"
    rf"[A-Za-z0-9_][A-Za-z0-9_.:@+=/-]{{0,127}}{_END}"
)
"""tabular-store row keys (`agents/planner`, `config.main`, `a:b@1`): `/`-separated segments, each
starting as a name does (no empty, `.` or `..` segment, no trailing `/`), none of them `versions`
(`…/rows/{key}/versions` is the row's history). No `~`: streams spell `/` with it (`domain.tables`)."""
ROW_PREFIX_PATTERN: Final = rf"^[A-Za-z0-9_.:@+=/-]{{0,128}}{_END}"
"""what a listing's `prefix` may be: the start of some row key (`agents/`), or nothing."""

Identifier = Annotated[str, msgspec.Meta(pattern=IDENTIFIER_PATTERN)]
TenantId = Identifier
Env = Identifier
ProjectId = Identifier
SurfaceId = Identifier
AppId = Identifier
UserId = Identifier
Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN)]
MemoryKey = Name
SessionId = Name
RunId = Name
EntryKey = Name
DocumentId = Annotated[str, msgspec.Meta(pattern=DOCUMENT_ID_PATTERN)]

_COMPILED: dict[str, re.Pattern[str]] = {}


def matches(value: object, pattern: str = IDENTIFIER_PATTERN) -> bool:
    """Whether `value` is a string of `pattern` (the identifier pattern by default)."""
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        compiled = _COMPILED[pattern] = re.compile(pattern)
    return isinstance(value, str) and compiled.match(value) is not None


def check(field: str, value: object, pattern: str = IDENTIFIER_PATTERN) -> str:
    """`value` if it matches `pattern`; else `InvalidIdentifier` naming `field` (422)."""
    if not matches(value, pattern):
        raise InvalidIdentifier(field, pattern)
    assert isinstance(value, str)
    return value

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
UNIT_PATTERN: Final = rf"^[A-Za-z0-9_][A-Za-z0-9_.:-]{{0,63}}{_END}"
"""budget units (`tokens`, `usd`)."""
VIEW_NAME_PATTERN: Final = rf"^[a-z][a-z0-9_.:-]{{0,127}}{_END}"
"""projection (view) names: `memory`, `blackboard`."""

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

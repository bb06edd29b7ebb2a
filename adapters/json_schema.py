"""JSON Schema for the tabular store's rows, through the `jsonschema` library.

A table's schema is checked once, when it is defined (`check_schema`): its size, its dialect
(Draft 2020-12 unless `$schema` names another that the library knows), its validity against that
dialect's metaschema, and every `$ref` in it, which must resolve inside the schema itself or to a
metaschema the library ships. Nothing is ever fetched: the registry has no retrieval, so a remote
`$ref` is refused at definition time instead of being looked up on every row write.

`violation(schema, value)` is the one most relevant error of a row value, or None. Compiled
validators are kept by the schema's JSON, so a busy table does not build its validator per write.

`format` is an annotation, not an assertion (the default of Draft 2019-09 and later). Patterns
(`pattern`, `patternProperties`) are run by the `regex` library with a time bound, never by `re`:
a tenant's schema may hold a pattern that backtracks for hours on a 40-character value
(`^(a+)+$`), and `re` holds the interpreter while it does. A pattern that does not finish on a
value within `PATTERN_SECONDS` is that value's violation (keyword `pattern`), as a value a
browser's regex engine would time out on too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import jsonschema_specifications  # type: ignore[import-untyped]  # jsonschema's own dependency
import msgspec
import regex
from jsonschema import Draft202012Validator, _keywords, _legacy_keywords, _utils
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import specification_with

from domain.errors import TableSchemaInvalid
from domain.tables import MAX_SCHEMA_BYTES

# The metaschemas, offline: a `$ref` to a dialect's own schema resolves without a network.
_METASCHEMAS: Final[Registry[Any]] = jsonschema_specifications.REGISTRY
_DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"  # the dialect without $schema
_CACHED: Final = 256
_MAX_MESSAGE: Final = 500  # a message may quote the value: bounded, as every answer is
_PROBES: Final[tuple[Any, ...]] = (None, True, 0, "", [], {})
_LOOP: Final = "its $refs loop back to where they start without going into the value"
PATTERN_SECONDS: Final = 0.1  # per pattern and value: legitimate patterns take microseconds


class _PatternTooSlow(Exception):
    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


class _TimedRe:
    """What jsonschema's keywords call `re` (they use `re.search` alone): `regex`, time-bounded,
    releasing the interpreter while it matches."""

    @staticmethod
    def search(pattern: str, string: str) -> object:
        try:
            return regex.search(pattern, string, timeout=PATTERN_SECONDS, concurrent=True)
        except TimeoutError:
            raise _PatternTooSlow(pattern) from None


# Every module of the library that matches patterns; `tests/unit/test_json_schema.py` checks the
# list is whole (no other module of the library names `re`), so an upgrade cannot reopen the hole.
PATTERN_MODULES: Final = (_keywords, _legacy_keywords, _utils)
for _module in PATTERN_MODULES:
    _module.re = _TimedRe  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a value breaks a schema: a JSON pointer into the value, the message, the keyword."""

    pointer: str
    message: str
    keyword: str


def check_schema(schema: Any) -> None:
    """Refuse (`TableSchemaInvalid`, naming where in the body) a schema rows could not be held to."""
    if schema is None:
        return
    size = len(msgspec.json.encode(schema))
    if size > MAX_SCHEMA_BYTES:
        raise TableSchemaInvalid("/schema", f"{size} bytes as JSON, more than {MAX_SCHEMA_BYTES}")
    cls = _dialect(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as error:
        raise TableSchemaInvalid(_pointer("/schema", error.absolute_path), _bounded(error.message)) from None
    registry, resource = _registry(schema)
    try:
        paths = dict(_objects(schema, "/schema"))
        _check_refs(registry.resolver(base_uri=resource.id() or ""), resource, paths)
    except _UnresolvedRef as error:
        raise TableSchemaInvalid(error.where, error.reason) from None
    for probe in _PROBES:  # `{"$ref": "#"}` loops on any value: refused now, not on each write
        violation(schema, probe)


def violation(schema: Any, value: Any) -> Violation | None:
    """The most relevant error of `value` under `schema` (checked by `check_schema`), or None."""
    if schema is None:
        return None
    validator = _compiled(schema)
    try:
        error = best_match(validator.iter_errors(value))
    except Unresolvable as exc:  # a schema stored before refs were checked: its fault, not the row's
        raise TableSchemaInvalid("/schema", f"a $ref cannot be resolved: {exc}") from None
    except RecursionError:
        raise TableSchemaInvalid("/schema", _LOOP) from None
    except _PatternTooSlow as slow:
        message = (
            f"the pattern {slow.pattern[:200]!r} did not finish on this value within {PATTERN_SECONDS:g} s"
        )
        return Violation(pointer="", message=message, keyword="pattern")
    if error is None:
        return None
    keyword = error.validator if isinstance(error.validator, str) else "schema"
    return Violation(
        pointer=_pointer("", error.absolute_path), message=_bounded(error.message), keyword=keyword
    )


_validators: OrderedDict[bytes, Validator] = OrderedDict()


def _compiled(schema: Any) -> Validator:
    key = msgspec.json.encode(schema, order="sorted")
    validator = _validators.get(key)
    if validator is None:
        registry, _ = _registry(schema)
        validator = _validators[key] = _dialect(schema)(schema, registry=registry)
        if len(_validators) > _CACHED:
            _validators.popitem(last=False)
    else:
        _validators.move_to_end(key)
    return validator


def _dialect(schema: Any) -> type[Validator]:
    if not isinstance(schema, dict) or "$schema" not in schema:
        return Draft202012Validator
    dialect = schema["$schema"]
    cls = validator_for(schema, default=None) if isinstance(dialect, str) else None  # type: ignore[arg-type]
    if cls is None:
        raise TableSchemaInvalid(
            "/schema/$schema",
            f"unknown dialect {str(dialect)[:200]!r}: use a JSON Schema draft's URI, such as "
            '"https://json-schema.org/draft/2020-12/schema", or leave $schema out',
        )
    return cls


def _registry(schema: Any) -> tuple[Registry[Any], Resource[Any]]:
    """The schema with its embedded resources (`$id`), and the metaschemas; no retrieval."""
    dialect = schema.get("$schema") if isinstance(schema, dict) else None
    specification = specification_with(dialect or "", default=specification_with(_DRAFT_2020_12))
    resource = specification.create_resource(schema)
    registry = _METASCHEMAS.with_resource(uri=resource.id() or "", resource=resource).crawl()
    return registry, resource


class _UnresolvedRef(Exception):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


def _check_refs(resolver: Any, resource: Resource[Any], paths: dict[int, str]) -> None:
    """Look every `$ref` up from its own subschema (an embedded `$id` moves the base URI)."""
    contents = resource.contents
    if isinstance(contents, dict):
        for keyword in ("$ref", "$dynamicRef"):
            ref = contents.get(keyword)
            if isinstance(ref, str):
                try:
                    resolver.lookup(ref)
                except Unresolvable:
                    reason = (
                        f"{keyword} {ref[:200]!r} does not resolve inside the schema; remote "
                        "references are never fetched (embed the referenced schema under $defs)"
                    )
                    where = f"{paths.get(id(contents), '/schema')}/{_escape(keyword)}"
                    raise _UnresolvedRef(where, reason) from None
    for sub in resource.subresources():
        _check_refs(resolver.in_subresource(sub), sub, paths)


def _objects(value: Any, path: str) -> Iterable[tuple[int, str]]:
    """Where each object of a JSON value is, as a JSON pointer, by the object's identity."""
    if isinstance(value, dict):
        yield id(value), path
        for name, item in value.items():
            yield from _objects(item, f"{path}/{_escape(str(name))}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _objects(item, f"{path}/{n}")


def _pointer(root: str, path: Iterable[object]) -> str:
    return root + "".join(f"/{_escape(str(part))}" for part in path)


def _escape(part: str) -> str:
    """RFC 6901: `~` and `/` are escaped in a pointer's reference tokens."""
    return part.replace("~", "~0").replace("/", "~1")


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"

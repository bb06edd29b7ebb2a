"""The tabular store's JSON Schema checks: patterns never run unbounded."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import jsonschema

from adapters.json_schema import PATTERN_MODULES, check_schema, violation

BACKTRACKS = "^(a|aa)+$"  # on forty a's and a `!`: hours, in `re` and in `regex` without a bound


def test_every_module_of_the_library_that_matches_patterns_runs_them_time_bounded() -> None:
    """An upgrade of jsonschema that matches patterns in another module must fail here, not
    reopen a tenant's way to stall the service."""
    root = Path(jsonschema.__file__).parent
    matching = {
        name
        for module in pkgutil.iter_modules([str(root)])
        if not (name := module.name).startswith("tests")
        and re.search(r"\bre\.(search|match|fullmatch|compile|finditer|findall)\(", _source(root, name))
    }
    assert matching <= {m.__name__.rsplit(".", 1)[1] for m in PATTERN_MODULES} | {"_format", "exceptions"}
    # `_format` compiles (never runs) a pattern to check its syntax; `exceptions` has its own constant one


def test_a_backtracking_pattern_is_a_violation_of_the_value() -> None:
    schema = {"type": "object", "patternProperties": {BACKTRACKS: {"type": "integer"}},
              "properties": {"name": {"pattern": BACKTRACKS}}}  # fmt: skip
    check_schema(schema)
    found = violation(schema, {"name": "a" * 40 + "!"})
    assert found is not None
    assert (found.keyword, "did not finish" in found.message) == ("pattern", True)
    assert violation(schema, {"a" * 40 + "!": 1}) is not None  # property names are matched too
    assert violation(schema, {"name": "aaaa", "aa": 1}) is None
    mismatch = violation(schema, {"name": "b"})
    assert mismatch is not None
    assert (mismatch.pointer, mismatch.keyword) == ("/name", "pattern")


def _source(root: Path, name: str) -> str:
    path = root / f"{name}.py"
    return path.read_text() if path.exists() else ""

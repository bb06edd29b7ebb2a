"""The calls of the generic tabular store: table definitions, rows by key, each row's history.

A row key may hold `/` (`agents/planner`): it is sent as it is, never as `%2F` (the server
refuses an encoded `/`), and every other character of it percent-encoded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from spine_client._calls import Call, call, if_match, min_position_header, present, segment
from spine_client.types import (
    ExpectedVersion,
    Row,
    Rows,
    RowVersions,
    RowWritten,
    TableDefinition,
    Tables,
    TableWritten,
)


def define_table(
    table: str,
    *,
    schema: Any = None,
    description: str | None = None,
    expected_version: ExpectedVersion | None = None,
) -> Call[TableWritten]:
    """Write a table's whole definition: the JSON Schema its rows' values must satisfy (None: any
    JSON) and a description; with `expected_version`, only if it still holds (409)."""
    sent = {"schema": schema, **present(description=description, expected_version=expected_version)}
    return call("PUT", _table(table), TableWritten, json=sent)


def get_table(table: str, *, min_position: int | None = None) -> Call[TableDefinition]:
    return call("GET", _table(table), TableDefinition, headers=min_position_header(min_position))


def list_tables(
    *, after: str | None = None, limit: int = 100, min_position: int | None = None
) -> Call[Tables]:
    """Defined tables by name (a table holding rows only is not listed)."""
    params = {"after": after, "limit": limit}
    return call("GET", "/v1/tables", Tables, params=params, headers=min_position_header(min_position))


def put_row(
    table: str, key: str, value: Any, *, expected_version: ExpectedVersion | None = None
) -> Call[RowWritten]:
    """Write a row (a new version); with `expected_version`, only if it still holds (409).
    A value the table's schema refuses is 422 `tabular.schema_violation`."""
    sent = {"value": value, **present(expected_version=expected_version)}  # a None value is sent
    return call("PUT", _row(table, key), RowWritten, json=sent)


def get_row(table: str, key: str, *, min_position: int | None = None) -> Call[Row]:
    """A row's latest version (404 `tabular.not_found` when absent or deleted)."""
    return call("GET", _row(table, key), Row, headers=min_position_header(min_position))


def delete_row(table: str, key: str, *, expected_version: int | None = None) -> Call[RowWritten]:
    """Delete a row: a tombstone version; its history stays."""
    return call("DELETE", _row(table, key), RowWritten, headers=if_match(expected_version))


def list_rows(
    table: str,
    *,
    prefix: str | None = None,
    after: str | None = None,
    limit: int = 100,
    min_position: int | None = None,
) -> Call[Rows]:
    """Live rows whose keys start with `prefix`, in key order, values included."""
    params = {"prefix": prefix, "after": after, "limit": limit}
    path = f"{_table(table)}/rows"
    return call("GET", path, Rows, params=params, headers=min_position_header(min_position))


def row_versions(
    table: str, key: str, *, after: int = 0, limit: int = 100, min_position: int | None = None
) -> Call[RowVersions]:
    """Every version of a row in order, tombstones included, without their values."""
    params = {"after": after, "limit": limit}
    path = f"{_row(table, key)}/versions"
    return call("GET", path, RowVersions, params=params, headers=min_position_header(min_position))


def get_row_version(table: str, key: str, version: int, *, min_position: int | None = None) -> Call[Row]:
    path = f"{_row(table, key)}/versions/{version}"
    return call("GET", path, Row, headers=min_position_header(min_position))


def _table(table: str) -> str:
    return f"/v1/tables/{segment(table)}"


def _row(table: str, key: str) -> str:
    return f"{_table(table)}/rows/{quote(key, safe='/')}"

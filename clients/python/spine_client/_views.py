"""The calls of the views that hold documents: memory, sessions, blackboards, SEO, saves, strategy locks,
KPIs.

A write answers its `position`; pass it as `min_position` to a later read to have that read wait
(bounded) until the view reflects the write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from spine_client._calls import Call, call, if_match, min_position_header, new_event_id, present, segment
from spine_client.types import (
    Board,
    Entry,
    EntryWritten,
    ExpectedVersion,
    Kpi,
    Kpis,
    KpiSeries,
    KpiValuesRecorded,
    KpiWritten,
    MemoryValue,
    MemoryWritten,
    MessageAdded,
    Save,
    Saves,
    SaveVersion,
    SaveVersions,
    SaveWritten,
    SeoPage,
    SeoPages,
    SeoWritten,
    Session,
    Snapshot,
    Snapshots,
    SnapshotTaken,
)

SaveKind = Literal["flows", "graphs", "overlays"]


def set_memory(key: str, value: Any, *, ttl_seconds: int | None = None) -> Call[MemoryWritten]:
    """Set a key of the caller's own memory, optionally for `ttl_seconds`."""
    return call(
        "PUT", f"/v1/memory/{segment(key)}", MemoryWritten, json=_with_value(value, ttl_seconds=ttl_seconds)
    )


def get_memory(key: str, *, min_position: int | None = None) -> Call[MemoryValue]:
    """A key of the caller's memory; `found` is False when absent or expired."""
    return call("GET", f"/v1/memory/{segment(key)}", MemoryValue, headers=_min(min_position))


def delete_memory(key: str) -> Call[MemoryWritten]:
    return call("DELETE", f"/v1/memory/{segment(key)}", MemoryWritten)


def add_message(
    session_id: str, role: str, content: Any, *, metadata: Mapping[str, Any] | None = None
) -> Call[MessageAdded]:
    """Append a message to one of the caller's sessions (`role`: user, assistant, system, tool)."""
    sent = {"role": role, "content": content, **present(metadata=metadata)}
    return call("POST", f"/v1/sessions/{segment(session_id)}/messages", MessageAdded, json=sent)


def get_session(session_id: str, *, min_position: int | None = None) -> Call[Session]:
    return call("GET", f"/v1/sessions/{segment(session_id)}", Session, headers=_min(min_position))


def write_entry(
    run_id: str, key: str, value: Any, *, expected_version: ExpectedVersion | None = None
) -> Call[EntryWritten]:
    """Write a blackboard entry of a run; with `expected_version`, only if it still holds (409)."""
    sent = _with_value(value, expected_version=expected_version)
    return call("PUT", f"{_board(run_id)}/{segment(key)}", EntryWritten, json=sent)


def get_entry(run_id: str, key: str, *, min_position: int | None = None) -> Call[Entry]:
    """One entry (404 `blackboard.not_found` when absent)."""
    return call("GET", f"{_board(run_id)}/{segment(key)}", Entry, headers=_min(min_position))


def get_board(run_id: str, *, min_position: int | None = None) -> Call[Board]:
    return call("GET", _board(run_id), Board, headers=_min(min_position))


def put_seo(
    page: str,
    title: str,
    *,
    description: str | None = None,
    canonical_url: str | None = None,
    robots: str | None = None,
    open_graph: Mapping[str, str] | None = None,
    structured_data: Any = None,
    expected_version: ExpectedVersion | None = None,
) -> Call[SeoWritten]:
    """Save a page's whole SEO config for the client's app and surface (every write replaces it)."""
    sent = present(title=title, description=description, canonical_url=canonical_url, robots=robots,
                open_graph=open_graph, structured_data=structured_data, expected_version=expected_version)  # fmt: skip
    return call("PUT", f"/v1/seo/{segment(page)}", SeoWritten, json=sent)


def get_seo(page: str, *, min_position: int | None = None) -> Call[SeoPage]:
    return call("GET", f"/v1/seo/{segment(page)}", SeoPage, headers=_min(min_position))


def list_seo_pages(
    *, after: str | None = None, limit: int = 100, min_position: int | None = None
) -> Call[SeoPages]:
    params = {"after": after, "limit": limit}
    return call("GET", "/v1/seo", SeoPages, params=params, headers=_min(min_position))


def delete_seo(page: str, *, expected_version: int | None = None) -> Call[SeoWritten]:
    return call("DELETE", f"/v1/seo/{segment(page)}", SeoWritten, headers=if_match(expected_version))


def define_kpi(
    name: str,
    unit: str,
    aggregation: Literal["sum", "count", "min", "max", "last", "p50", "p95"],
    *,
    description: str | None = None,
    expected_version: ExpectedVersion | None = None,
) -> Call[KpiWritten]:
    """Define a KPI of the project, or replace its definition (a new version)."""
    sent = present(
        unit=unit, aggregation=aggregation, description=description, expected_version=expected_version
    )
    return call("PUT", f"/v1/kpis/{segment(name)}", KpiWritten, json=sent)


def get_kpi(name: str, *, min_position: int | None = None) -> Call[Kpi]:
    return call("GET", f"/v1/kpis/{segment(name)}", Kpi, headers=_min(min_position))


def list_kpis(*, after: str | None = None, limit: int = 100, min_position: int | None = None) -> Call[Kpis]:
    params = {"after": after, "limit": limit}
    return call("GET", "/v1/kpis", Kpis, params=params, headers=_min(min_position))


def record_kpi_value(
    name: str,
    value: float,
    *,
    at: str | datetime | None = None,
    run_id: str | None = None,
    id: str | None = None,
) -> Call[KpiValuesRecorded]:
    """Record a value (at the server's clock unless `at`); attribution comes from the client's context."""
    sent = present(value=value, at=_time(at), run_id=run_id, id=id or new_event_id())
    return call("POST", f"/v1/kpis/{segment(name)}/values", KpiValuesRecorded, json=sent, idempotent=True)


def record_kpi_values(name: str, values: Sequence[Mapping[str, Any]]) -> Call[KpiValuesRecorded]:
    """Record up to 1000 values (each as `record_kpi_value` takes it); one bad value refuses all."""
    sent = [{**v, "at": _time(v.get("at")), "id": v.get("id") or new_event_id()} for v in values]
    body = {"values": [{k: x for k, x in v.items() if x is not None} for v in sent]}
    return call("POST", f"/v1/kpis/{segment(name)}/values", KpiValuesRecorded, json=body, idempotent=True)


def kpi_series(
    name: str,
    *,
    bucket: Literal["minute", "hour", "day"] = "hour",
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    dimension: Literal["none", "app", "surface", "run"] = "none",
    value: str | None = None,
    min_position: int | None = None,
) -> Call[KpiSeries]:
    """A KPI's rollups by UTC bucket from `start` (inclusive) to `end` (exclusive): its total, or
    one series per app, surface or run (`value`: only that one)."""
    params = {"bucket": bucket, "from": _time(start), "to": _time(end), "dimension": dimension}
    return call(
        "GET", f"/v1/kpis/{segment(name)}/series", KpiSeries, params={**params, "value": value},
        headers=_min(min_position),
    )  # fmt: skip


def create_save(kind: SaveKind, name: str, body: Any, *, id: str | None = None) -> Call[SaveWritten]:
    """Create a save (version 1); 409 when `id` exists. Without an id the server makes one."""
    sent = {"name": name, "body": body, **present(id=id)}
    return call("POST", f"/v1/saves/{segment(kind)}", SaveWritten, json=sent)


def update_save(
    kind: SaveKind, save_id: str, name: str, body: Any, *, expected_version: ExpectedVersion | None = None
) -> Call[SaveWritten]:
    """A new version of a save; with `expected_version`, only if it is still the latest (409)."""
    sent = {"name": name, "body": body, **present(expected_version=expected_version)}
    return call("PUT", _save(kind, save_id), SaveWritten, json=sent)


def delete_save(kind: SaveKind, save_id: str, *, expected_version: int | None = None) -> Call[SaveWritten]:
    """Delete a save: a tombstone version; its history stays."""
    return call("DELETE", _save(kind, save_id), SaveWritten, headers=if_match(expected_version))


def get_save(kind: SaveKind, save_id: str, *, min_position: int | None = None) -> Call[Save]:
    return call("GET", _save(kind, save_id), Save, headers=_min(min_position))


def list_saves(
    kind: SaveKind, *, after: str | None = None, limit: int = 100, min_position: int | None = None
) -> Call[Saves]:
    """Live saves of a kind by id, without their bodies."""
    params = {"after": after, "limit": limit}
    return call("GET", f"/v1/saves/{segment(kind)}", Saves, params=params, headers=_min(min_position))


def list_save_versions(
    kind: SaveKind, save_id: str, *, after: int = 0, limit: int = 100, min_position: int | None = None
) -> Call[SaveVersions]:
    """Every version in order, tombstones included, without their bodies."""
    params = {"after": after, "limit": limit}
    path = f"{_save(kind, save_id)}/versions"
    return call("GET", path, SaveVersions, params=params, headers=_min(min_position))


def get_save_version(
    kind: SaveKind, save_id: str, version: int, *, min_position: int | None = None
) -> Call[SaveVersion]:
    path = f"{_save(kind, save_id)}/versions/{version}"
    return call("GET", path, SaveVersion, headers=_min(min_position))


def take_snapshot(
    lock_id: str, state: Any, *, expected_version: ExpectedVersion | None = None
) -> Call[SnapshotTaken]:
    """Take a strategy lock's snapshot; with `expected_version`, only if it is the latest (409)."""
    sent = {"state": state, **present(expected_version=expected_version)}
    return call("POST", _snapshots(lock_id), SnapshotTaken, json=sent)


def get_latest_snapshot(lock_id: str, *, min_position: int | None = None) -> Call[Snapshot]:
    return call("GET", f"{_snapshots(lock_id)}/latest", Snapshot, headers=_min(min_position))


def list_snapshots(
    lock_id: str, *, after: int = 0, limit: int = 100, min_position: int | None = None
) -> Call[Snapshots]:
    params = {"after": after, "limit": limit}
    return call("GET", _snapshots(lock_id), Snapshots, params=params, headers=_min(min_position))


def _with_value(value: Any, **optional: Any) -> dict[str, Any]:
    return {"value": value, **present(**optional)}  # a None value is sent: it is the value


def _time(value: str | datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _min(position: int | None) -> dict[str, str]:
    return min_position_header(position)


def _board(run_id: str) -> str:
    return f"/v1/runs/{segment(run_id)}/blackboard"


def _save(kind: str, save_id: str) -> str:
    return f"/v1/saves/{segment(kind)}/{segment(save_id)}"


def _snapshots(lock_id: str) -> str:
    return f"/v1/strategy-locks/{segment(lock_id)}/snapshots"

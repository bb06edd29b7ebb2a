"""Saves and strategy locks: key schemes, the decisions made on a save's stream, the projections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import SaveConflict, SaveNotFound
from domain.events import Event, EventMeta
from domain.owned import owning_route
from domain.saves import (
    CREATED,
    DELETED,
    LATEST,
    LIVE,
    UPDATED,
    VERSIONS,
    SavesProjection,
    decide_delete,
    decide_update,
    kind_prefix,
    latest_key,
    stream_of,
    version_key,
    versions_prefix,
)
from domain.strategy_locks import SNAPSHOT_TAKEN, snapshot_key, snapshots_prefix
from domain.views import Delete, Upsert


def event(event_type: str, version: int, data: dict[str, Any], position: int = 7) -> Event:
    return Event(
        id=f"e{position}",
        type=event_type,
        stream="save:flow:f",
        version=version,
        position=position,
        data=data,
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1", user_id="u1"),
        recorded_at=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )


def test_streams_are_the_designs_and_belong_to_their_routes() -> None:
    assert stream_of("flows", "f") == "save:flow:f"
    assert stream_of("overlays", "o:1") == "save:overlay:o:1"
    assert owning_route("save:graph:g", ["x.y"]) == "/v1/saves/{kind}"
    assert owning_route("mine", ["save.updated"]) == "/v1/saves/{kind}"
    assert owning_route("strategy_lock:l", ["x.y"]) == "/v1/strategy-locks/{id}/snapshots"
    assert owning_route("mine", [SNAPSHOT_TAKEN]) == "/v1/strategy-locks/{id}/snapshots"
    assert owning_route("saves", ["saved.x"]) is None  # a prefix of a word is not the owner's


def test_key_order_is_listing_order_and_no_id_prefixes_another() -> None:
    ids = ["a", "a:1", "a:1:2", "b", "ab"]
    assert sorted(latest_key("flows", i) for i in ids) == [latest_key("flows", i) for i in sorted(ids)]
    assert not latest_key("graphs", "a").startswith(kind_prefix("flows"))
    keys = [version_key("flows", "a", n) for n in (1, 2, 10, 100)]
    assert sorted(keys) == keys
    for other in ("a:1", "a:1:2"):
        assert not version_key("flows", other, 1).startswith(versions_prefix("flows", "a"))
        assert not snapshot_key(other, 1).startswith(snapshots_prefix("a"))
    assert sorted(snapshot_key("l", n) for n in (9, 10, 11)) == [snapshot_key("l", n) for n in (9, 10, 11)]


def test_an_update_needs_a_save_and_a_precondition_that_holds() -> None:
    created = event(CREATED, 1, {"kind": "flows", "id": "f", "name": "n", "body": 1})
    with pytest.raises(SaveNotFound):
        decide_update("flows", "f", "n", 2, None, None)
    with pytest.raises(SaveConflict) as conflict:
        decide_update("flows", "f", "n", 2, created, 2)
    assert (conflict.value.expected, conflict.value.actual) == (2, 1)
    assert decide_update("flows", "f", "m", 2, created, 1).type == UPDATED
    tombstone = event(DELETED, 2, {"kind": "flows", "id": "f", "name": "n"})
    assert decide_update("flows", "f", "m", 2, tombstone, None).type == UPDATED  # back to life


def test_a_delete_keeps_the_name_and_refuses_a_deleted_save() -> None:
    updated = event(UPDATED, 2, {"kind": "flows", "id": "f", "name": "kept", "body": {"x": 1}})
    decided = decide_delete("flows", "f", updated, None)
    assert (decided.type, decided.data) == (
        DELETED,
        {"kind": "flows", "id": "f", "name": "kept", "body": None},
    )
    with pytest.raises(SaveNotFound) as gone:
        decide_delete("flows", "f", event(DELETED, 3, decided.data), None)
    assert gone.value.details() == {"kind": "flows", "id": "f", "deleted": True, "version": 3}


def test_the_projection_derives_every_document_from_the_one_event() -> None:
    projection = SavesProjection()
    ops = projection.apply(event(UPDATED, 2, {"kind": "flows", "id": "f", "name": "n", "body": [1]}))
    assert [(type(op), op.collection, op.key) for op in ops] == [
        (Upsert, LATEST, "flows|f"),
        (Upsert, LIVE, "flows|f"),
        (Upsert, VERSIONS, version_key("flows", "f", 2)),
    ]
    assert isinstance(ops[0], Upsert)
    assert (ops[0].data["body"], ops[0].data["version"], ops[0].data["updated_by"]) == ([1], 2, "u1")
    gone = projection.apply(event(DELETED, 3, {"kind": "flows", "id": "f", "name": "n"}, position=9))
    assert isinstance(gone[1], Delete)
    assert gone[1].position == 9
    assert isinstance(gone[0], Upsert)
    assert (gone[0].data["deleted"], gone[0].data["body"]) == (True, None)

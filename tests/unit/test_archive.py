"""The rules of a tenant archive (`domain.archive`): what an import takes, passes over or refuses,
which manifests it reads, and how an archived log is read (`app.archive_files.ArchivedLog`)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec
import pytest

from app.archive_files import ArchivedLog, LinesWriter, encode_line, file_entry
from domain.archive import (
    CONTROL_PLANE,
    ROUTES,
    ArchiveInvalid,
    FileEntry,
    ImportConflict,
    Manifest,
    PartitionEntry,
    check_manifest,
    decide_record,
    needed,
    records_of,
    route_needed,
)
from domain.control_plane import (
    AppCreated,
    ControlPlane,
    MemberSet,
    ProjectCreated,
    TenantCreated,
    decide_bootstrap,
)
from domain.events import Event, EventMeta
from domain.partition import Partition
from domain.routing import Registry, Route

PARTITION = Partition(tenant_id="t1", env="dev", project_id="p1")
SHA = "0" * 64


def plane(*records: msgspec.Struct) -> ControlPlane:
    """A control plane that holds the seeded modes, t_system, and `records` (applied as events)."""
    state = ControlPlane()
    decisions = decide_bootstrap(state, "admin")
    types = {TenantCreated: "tenant.created", ProjectCreated: "project.created", AppCreated: "app.created",
             MemberSet: "member.set"}  # fmt: skip
    events = [(d.event.type, d.event.data, d.stream) for d in decisions]
    events += [(types[type(r)], msgspec.to_builtins(r), f"x:{n}") for n, r in enumerate(records)]
    for position, (event_type, data, stream) in enumerate(events, start=1):
        state.apply(_event(position, event_type, data, stream))
    return state


def _event(position: int, event_type: str, data: dict[str, object], stream: str = "s") -> Event:
    return Event(
        id=f"e{position}", type=event_type, stream=stream, version=1, position=position, data=data,
        meta=EventMeta(tenant_id="t1", env="dev", project_id="p1"), recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


TENANT = TenantCreated(tenant_id="t1", name="Acme", mode="lab")
APP = AppCreated(tenant_id="t1", app_id="web", name="Web", origins=["https://a.example"])


def test_a_missing_record_is_created_by_the_rule_the_api_uses() -> None:
    state = plane()
    assert needed(state, TENANT)
    [decision] = decide_record(state, TENANT)
    assert (decision.stream, decision.event.type, decision.expected_version) == (
        "tenant:t1",
        "tenant.created",
        "no_stream",
    )


def test_a_record_held_alike_is_passed_over() -> None:
    state = plane(TENANT, APP, MemberSet(tenant_id="t1", user_id="u1", role="member"))
    for record in (TENANT, APP, MemberSet(tenant_id="t1", user_id="u1", role="member")):
        assert not needed(state, record)
        assert decide_record(state, record) == []


@pytest.mark.parametrize(
    "record",
    [
        TenantCreated(tenant_id="t1", name="Other", mode="lab"),
        TenantCreated(tenant_id="t1", name="Acme", mode="saas"),
        AppCreated(tenant_id="t1", app_id="web", name="Web", origins=["https://b.example"]),
        MemberSet(tenant_id="t1", user_id="u1", role="admin"),
    ],
)
def test_a_record_held_otherwise_is_a_conflict(record: TenantCreated | AppCreated | MemberSet) -> None:
    state = plane(TENANT, APP, MemberSet(tenant_id="t1", user_id="u1", role="member"))
    with pytest.raises(ImportConflict, match="otherwise"):
        needed(state, record)


def test_the_records_of_a_tenant_hold_an_app_as_it_stands_and_no_other_tenant() -> None:
    other = TenantCreated(tenant_id="t2", name="Else", mode="lab")
    state = plane(TENANT, other, APP, ProjectCreated(tenant_id="t2", project_id="p9", name="p9"))
    assert records_of(state, "t1", None) == [TENANT, APP]


def test_a_route_to_another_backend_is_a_conflict() -> None:
    route = Route(
        resource_kind="event_spine", tenant_id="t1", env="dev", backend_type="sqlite", config={"path": "a.db"}
    )
    registry = Registry()
    assert route_needed(registry, route)
    registry.routes[route.key] = route
    assert not route_needed(registry, route)
    with pytest.raises(ImportConflict, match="routes event_spine/t1/dev/"):
        route_needed(registry, msgspec.structs.replace(route, config={"path": "b.db"}))


def manifest(**changes: object) -> Manifest:
    log = PartitionEntry(env="dev", project_id="p1", head=3, events=3, file="logs/dev/p1.jsonl.gz")
    files = [FileEntry(path=path, sha256=SHA, bytes=1) for path in (CONTROL_PLANE, ROUTES, log.file)]
    base = Manifest(format_version=1, spine_version="0.1.0", tenant_id="t1", projects=None, envs=["dev"],
                    created_at=None, partitions=[log], files=files)  # fmt: skip
    return msgspec.structs.replace(base, **changes)


def test_a_manifest_names_its_files_and_nothing_outside_the_archive() -> None:
    check_manifest(manifest())
    with pytest.raises(ArchiveInvalid, match="format version 2"):
        check_manifest(manifest(format_version=2))
    escaping = PartitionEntry(env="dev", project_id="p1", head=3, events=3, file="../../etc/passwd")
    with pytest.raises(ArchiveInvalid):
        check_manifest(manifest(partitions=[escaping]))
    with pytest.raises(ArchiveInvalid, match="not the files"):
        check_manifest(manifest(files=manifest().files[:2]))
    with pytest.raises(ArchiveInvalid, match="t_system"):
        check_manifest(manifest(tenant_id="t_system"))


def _log(tmp_path: Path, positions: list[int]) -> ArchivedLog:
    with LinesWriter(tmp_path, "logs/dev/p1.jsonl.gz") as writer:
        for position in positions:
            writer.write(encode_line(_event(position, "x.y", {"b": 1, "a": position})))
    assert writer.entry == file_entry(tmp_path, "logs/dev/p1.jsonl.gz")
    return ArchivedLog(tmp_path, "logs/dev/p1.jsonl.gz", max(positions))


def test_an_archived_log_reads_forward_and_again_from_any_position(tmp_path: Path) -> None:
    log = _log(tmp_path, [1, 2, 3, 4, 5])

    async def reads() -> list[list[int]]:
        pages = [await log.read(PARTITION, after=0, limit=2), await log.read(PARTITION, after=2, limit=10),
                 await log.read(PARTITION, after=3, limit=1), await log.read(PARTITION, after=5)]  # fmt: skip
        return [[e.position for e in page.events] for page in pages]

    assert anyio.run(reads) == [[1, 2], [3, 4, 5], [4], []]


def test_the_same_lines_give_the_same_bytes(tmp_path: Path) -> None:
    _log(tmp_path / "a", [1, 2])
    _log(tmp_path / "b", [1, 2])
    first, second = ((tmp_path / d / "logs/dev/p1.jsonl.gz").read_bytes() for d in "ab")
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # gzip's modification time: none
    assert b'{"a":1,"b":1}' in gzip.decompress(first)  # keys sorted


def test_a_log_with_gaps_reads_its_survivors(tmp_path: Path) -> None:
    """Retention removed 2 and 4: the positions skip, as the spine's reads do."""
    log = _log(tmp_path, [1, 3, 5])
    page = anyio.run(lambda: log.read(PARTITION, after=1, limit=10))
    assert ([e.position for e in page.events], page.next, page.head) == ([3, 5], 5, 5)


@pytest.mark.parametrize("positions", [[1, 3, 2, 4], [2, 2, 3]])
def test_a_log_whose_positions_do_not_rise_is_refused(tmp_path: Path, positions: list[int]) -> None:
    log = _log(tmp_path, positions)
    with pytest.raises(ArchiveInvalid, match="after"):
        anyio.run(lambda: log.read(PARTITION, after=0, limit=10))

"""Importing a tenant archive (`domain.archive`) into a deployment: check it all, then write it.

In order, and each step only once the previous one held:
1. every file's SHA-256 and size against the manifest (a file changed, cut or missing: refused);
2. the records and routes against the target's control plane, and each partition's log against
   the target's (a record or an event held otherwise: refused). Nothing is written before this;
3. the records, through the decide rules the API uses (a record held alike is passed over), then
   the routes (`with_routes` only: a route names the source deployment's backends), then the
   users' data keys (a user holding another key in the target is a conflict, found in step 2);
4. each log, copied with its positions, ids, stream versions, metadata and times into the
   partition's routed spine by `copy_log` (from the target's head: an import cut short resumes);
5. each log read again from the target and compared, per range, with the archive (`digests`).
An import that completed is a no-op when run again: every record is held alike, every log is whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from app.archive_files import ArchivedLog, decode_lines, file_entry
from app.key_ring import KeyRing
from app.usecases.control_plane import ControlPlaneService, system_meta
from app.usecases.move import Gaps, MoveRefused, RangeDigest, copy_log, digests, fill_plan, holds_the_start_of
from domain.archive import (
    CONTROL_PLANE,
    DATA_KEYS,
    MANIFEST,
    ROUTES,
    ArchivedKey,
    ArchivedRecord,
    ArchiveInvalid,
    ControlRecord,
    ImportConflict,
    Manifest,
    PartitionEntry,
    TargetNotBootstrapped,
    check_manifest,
    check_records,
    decide_record,
    needed,
    route_needed,
)
from domain.control_plane import ControlPlane, Decision
from domain.partition import SYSTEM_TENANT, Partition
from domain.ports import EventSpine
from domain.routing import Registry, Route, decide_route
from domain.secrets import SecretFiles

SpineOf = Callable[[Partition, str, Registry | None], Awaitable[EventSpine]]
Progress = Callable[[int], None]
Bar = Callable[[str, int], Progress]  # a task of a label and a total, and its update (done so far)
_manifest_decoder = msgspec.json.Decoder(Manifest)


class Imported(msgspec.Struct, frozen=True, kw_only=True):
    manifest: Manifest
    records: int  # records created (the others were held alike)
    routes: int  # routes created
    copied: dict[str, int]  # events appended now, per log file


def read_manifest(root: Path) -> Manifest:
    try:
        raw = (root / MANIFEST).read_bytes()
    except OSError as exc:
        raise ArchiveInvalid(f"cannot read {MANIFEST} in {root}: {exc.strerror or exc}") from None
    try:
        manifest = _manifest_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ArchiveInvalid(f"{MANIFEST} is not a tenant archive's manifest: {exc}") from None
    check_manifest(manifest)
    return manifest


def verify_files(root: Path, manifest: Manifest, bar: Bar) -> None:
    """Every file as the manifest says, by SHA-256 and size; `ArchiveInvalid` for the first that is not."""
    update = bar("checksums", sum(entry.bytes for entry in manifest.files))
    done = 0

    def read(size: int) -> None:
        nonlocal done
        done += size
        update(done)

    for expected in manifest.files:
        try:
            actual = file_entry(root, expected.path, read)
        except OSError as exc:
            raise ArchiveInvalid(f"cannot read {expected.path}: {exc.strerror or exc}") from None
        if actual != expected:
            raise ArchiveInvalid(
                f"checksum mismatch: {expected.path} has SHA-256 {actual.sha256[:16]}… and {actual.bytes} "
                f"bytes, the manifest says {expected.sha256[:16]}… and {expected.bytes}: the archive was "
                "changed or damaged since it was written"
            )


async def import_archive(
    root: Path,
    *,
    control: ControlPlaneService,
    spine_of: SpineOf,
    with_routes: bool,
    secret_files: SecretFiles,
    inside_data_dir: Callable[[str], bool],
    range_size: int,
    bar: Bar,
    keys: KeyRing,
) -> Imported:
    manifest = read_manifest(root)
    verify_files(root, manifest, bar)
    records = [line.record() for line in decode_lines(root, CONTROL_PLANE, ArchivedRecord)]
    tenant = check_records(manifest, records)
    routes = list(decode_lines(root, ROUTES, Route))
    if any(route.tenant_id != manifest.tenant_id for route in routes):
        raise ArchiveInvalid(f"{ROUTES} holds a route of another tenant than {manifest.tenant_id!r}")

    # Everything checked against the target before anything is written to it
    await control.projector.catch_up()
    state, registry = control.state, control.projector.registry
    if SYSTEM_TENANT not in state.tenants:
        raise TargetNotBootstrapped(
            "the target deployment has no control plane yet: start it and run `spine bootstrap` first"
        )
    if tenant.tenant_id not in state.tenants and tenant.mode not in state.modes:
        raise ImportConflict(f"the target knows no mode {tenant.mode!r} (it knows {sorted(state.modes)})")
    missing = [record for record in records if needed(state, record)]
    new_routes = [route for route in routes if with_routes and route_needed(registry, route)]
    for route in new_routes:
        if route.backend_type == "sqlite" and not inside_data_dir(str(route.config.get("path", ""))):
            raise ImportConflict(f"route {'/'.join(route.key)}: a sqlite path must stay inside the data dir")
        decide_route(registry, route, mode=tenant.mode, now=datetime.now(UTC), files=secret_files)
    planned = Registry()  # the target's routes as they will be once the archive's are written
    planned.routes = {**registry.routes, **{route.key: route for route in new_routes}}
    logs = [
        (_partition(manifest, entry), entry, ArchivedLog(root, entry.file, entry.head))
        for entry in manifest.partitions
    ]
    gaps: dict[str, Gaps] = {}  # per log file, when retention had removed events before the export
    for partition, entry, log in logs:
        gaps[entry.file] = await fill_plan(log, partition) if entry.events < entry.head else {}
        await _check_target(
            entry, log, await spine_of(partition, tenant.mode, planned), partition, gaps[entry.file]
        )
    data_keys = list(decode_lines(root, DATA_KEYS, ArchivedKey)) if _holds(manifest, DATA_KEYS) else []
    if tenant.tenant_id in state.tenants:  # a new tenant holds no keys yet
        for key in data_keys:
            held = await keys.live_key_id(tenant.tenant_id, key.user_id)
            if held not in (None, key.key_id):
                raise ImportConflict(
                    f"{DATA_KEYS}: user {key.user_id!r} holds another data key in the target"
                )

    meta = system_meta(control.projector.partition.env, request_id="spine-import")
    for record in missing:
        await control.execute(_record_decider(record), meta)
    for route in new_routes:
        await control.execute(_route_decider(control, route, tenant.mode, secret_files), meta)
    for key in data_keys:
        if not await keys.adopt(key, tenant.tenant_id):  # another key made there since the check
            raise ImportConflict(f"{DATA_KEYS}: user {key.user_id!r} holds another data key in the target")
    copied: dict[str, int] = {}
    total = sum(entry.head for entry in manifest.partitions)
    update, base = bar("copy", total), 0
    for partition, entry, log in logs:
        spine = await spine_of(partition, tenant.mode, None)
        _, copied[entry.file] = await copy_log(log, spine, partition, _after(update, base), gaps[entry.file])
        base += entry.head

    update, base = bar("verify", 2 * total), 0
    for partition, entry, log in logs:
        spine = await spine_of(partition, tenant.mode, None)
        ours = await digests(log, partition, entry.head, range_size, _after(update, base))
        theirs = await digests(spine, partition, entry.head, range_size, _after(update, base + entry.head))
        base += 2 * entry.head
        _compare(entry, ours, theirs)
    return Imported(manifest=manifest, records=len(missing), routes=len(new_routes), copied=copied)


def _holds(manifest: Manifest, path: str) -> bool:
    return any(entry.path == path for entry in manifest.files)


def _after(update: Progress, base: int) -> Progress:
    """`update` of a bar over several logs, from one log's positions: those before it are done."""
    return lambda at: update(base + at)


def _partition(manifest: Manifest, entry: PartitionEntry) -> Partition:
    return Partition(tenant_id=manifest.tenant_id, env=entry.env, project_id=entry.project_id)


async def _check_target(
    entry: PartitionEntry, log: ArchivedLog, spine: EventSpine, partition: Partition, gaps: Gaps
) -> None:
    """The target's log of the partition is empty, or the start of the archive's: else a conflict."""
    try:
        await holds_the_start_of(log, spine, partition, gaps, name="archive")
    except MoveRefused as exc:
        raise ImportConflict(f"{entry.file}: {exc.message}") from None


def _record_decider(record: ControlRecord) -> Callable[[ControlPlane], list[Decision]]:
    return lambda state: decide_record(state, record)


def _route_decider(
    control: ControlPlaneService, route: Route, mode: str, files: SecretFiles
) -> Callable[[object], list[Decision]]:
    def decide(_: object) -> list[Decision]:
        registry = control.projector.registry
        if not route_needed(registry, route):
            return []
        decision, _previous = decide_route(registry, route, mode=mode, now=datetime.now(UTC), files=files)
        return [decision]

    return decide


def _compare(entry: PartitionEntry, ours: list[RangeDigest], theirs: list[RangeDigest]) -> None:
    for archived, target in zip(ours, theirs, strict=True):
        if archived != target:
            raise ImportConflict(
                f"{entry.file}: positions {archived.first}-{archived.last} differ in the target "
                f"({target.count} events, SHA-256 {target.sha256[:16]}…) from the archive "
                f"({archived.count} events, SHA-256 {archived.sha256[:16]}…)"
            )

"""Exporting a tenant: its control-plane records, its routes and its partitions' logs, as an archive
(`domain.archive`) written into a directory.

The logs are read from wherever the routing registry sends each partition, page by page up to the
head each had when its turn came, and written as they are read: the archive never holds a log in
memory. Everything is written into a fresh directory beside `out` and renamed to `out` once the
manifest is in it, so an export that stopped half-way leaves no directory that looks complete.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import msgspec

from app.archive_files import LinesWriter, discard, encode_line, publish, staging_dir, write_bytes
from app.key_ring import KeyRing
from domain.archive import (
    CONTROL_PLANE,
    DATA_KEYS,
    FORMAT_VERSION,
    MANIFEST,
    ROUTES,
    ArchivedKey,
    FileEntry,
    Manifest,
    PartitionEntry,
    archived,
    log_path,
    partition_projects,
    records_of,
    routes_of,
)
from domain.control_plane import ControlPlane
from domain.errors import MissingRoute
from domain.partition import Partition
from domain.ports import EventSpine
from domain.routing import Registry, routed_envs

PAGE = 1000
SpineOf = Callable[[Partition], Awaitable[EventSpine]]
Progress = Callable[[int], None]  # called with the events written so far
Found = Callable[[list[tuple[Partition, int]]], Progress]  # the partitions with events, and their heads


class Skipped(msgspec.Struct, frozen=True):
    """A partition of an env looked in by default that has no event spine route: nothing to read."""

    partition: Partition
    reason: str


async def export_tenant(
    *,
    state: ControlPlane,
    registry: Registry,
    spine_of: SpineOf,
    default_env: str,
    tenant_id: str,
    projects: list[str] | None,
    envs: list[str] | None,
    out: Path,
    found: Found,
    keys: KeyRing,
) -> tuple[Manifest, list[Skipped]]:
    """Write the archive of `tenant_id` (of `projects`, default all; in `envs`, default the
    deployment's own and those its routes name) to `out`, which must not exist or be empty.

    Logs are written as stored, personal fields sealed, beside the live data keys of the tenant's
    users (`keys`): an erased user's fields stay erased in the archive and wherever it goes."""
    records = records_of(state, tenant_id, projects)
    project_ids = partition_projects(state, tenant_id, projects)
    looked = sorted(set(envs) if envs else routed_envs(registry, tenant_id) | {default_env})
    skipped: list[Skipped] = []
    logs: list[tuple[Partition, EventSpine, int]] = []
    for env in looked:
        for project_id in project_ids:
            partition = Partition(tenant_id=tenant_id, env=env, project_id=project_id)
            try:
                spine = await spine_of(partition)
            except MissingRoute as exc:
                if envs:  # asked for: say so
                    raise
                skipped.append(Skipped(partition, exc.message))
                continue
            head = await spine.head(partition)
            if head:
                logs.append((partition, spine, head))
    progress = found([(partition, head) for partition, _, head in logs])
    work = staging_dir(out)
    try:
        with LinesWriter(work, CONTROL_PLANE) as control:
            for record in records:
                control.write(encode_line(archived(record)))
        with LinesWriter(work, ROUTES) as routes:
            for route in routes_of(registry, tenant_id, projects):
                routes.write(encode_line(route))
        files: list[FileEntry] = [control.entry, routes.entry]
        data_keys = await _live_keys(keys, tenant_id)
        if data_keys:
            with LinesWriter(work, DATA_KEYS) as written:
                for key in data_keys:
                    written.write(encode_line(key))
            files.append(written.entry)
        partitions: list[PartitionEntry] = []
        newest: datetime | None = None
        done = 0
        for partition, spine, head in logs:
            path = log_path(partition.env, partition.project_id)
            with LinesWriter(work, path) as log:
                cursor = 0
                while cursor < head:
                    page = await spine.read(partition, after=cursor, limit=min(PAGE, head - cursor))
                    if not page.events:
                        break
                    for event in page.events:
                        log.write(encode_line(event))
                        newest = event.recorded_at if newest is None else max(newest, event.recorded_at)
                    cursor = page.events[-1].position
                    done += len(page.events)
                    progress(done)
            files.append(log.entry)
            partitions.append(
                PartitionEntry(
                    env=partition.env, project_id=partition.project_id, head=head, events=log.lines, file=path
                )
            )
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            spine_version=importlib.metadata.version("spine"),
            tenant_id=tenant_id,
            projects=None if projects is None else project_ids,
            envs=looked,
            created_at=newest,
            partitions=partitions,
            files=sorted(files, key=lambda entry: entry.path),
        )
        write_bytes(work, MANIFEST, encode_manifest(manifest))
        publish(work, out)
    except BaseException:
        discard(work)
        raise
    return manifest, skipped


async def _live_keys(keys: KeyRing, tenant_id: str) -> list[ArchivedKey]:
    try:
        return await keys.live_keys(tenant_id)
    except MissingRoute:  # no key store: nothing of the tenant's was ever sealed
        return []


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest, order="deterministic"), indent=2) + b"\n"

"""Which object store a request's bytes go to: the `object_store` route of its partition.

Resolved per request through the routing registry, like spines and view stores, so a route
change takes effect on the next request. Outside lab a partition without a route is refused
(503 `object_store.missing_route`) before anything is read or written; in lab it falls back to
the filesystem store under the data directory (`LAB_OBJECTS`), and the answer says so
(`X-Spine-Warning`). The object index is not here: it is a view, kept beside the partition's log
(`projections.catalog`).
"""

from __future__ import annotations

from app.backends import OBJECT_STORE, Backends
from app.lab_warnings import LabWarnings
from domain.backend_url import Backend
from domain.context import RequestContext
from domain.ports import ObjectStore
from domain.routing import resolve
from projections.control_plane import ControlPlaneProjector

LAB_OBJECTS = Backend(backend_type="filesystem", config={"path": "objects"})  # in the data directory


async def object_store(
    backends: Backends, projector: ControlPlaneProjector, ctx: RequestContext, warnings: LabWarnings | None
) -> ObjectStore:
    """The object store of the request's partition; `MissingRoute`, `ForbiddenRoute` (503) when
    it has none it may use. A lab fallback is noted in `warnings`."""
    assert ctx.mode is not None  # the identity guard sets it from the tenant record
    resolution = resolve(projector.registry, OBJECT_STORE, ctx.tenant_id, ctx.env, ctx.project_id, ctx.mode)
    route = resolution.route
    if route is None:
        if warnings is not None:
            warnings.view(resolution.warning)
        return await backends.objects(LAB_OBJECTS)
    return await backends.objects(Backend(backend_type=route.backend_type, config=route.config))

"""Rate limits as control-plane data: a tenant's budgets per route class, with overrides per
project and per user, and what to do when the rate-limit backend cannot be reached.

A request's budget is its own caller's: one bucket per (tenant, project, user, route class),
whose limit is the most specific one set (the user's, else the project's, else the tenant's).
The bucket's key names the limit, so a changed limit starts a fresh bucket at once instead of
inheriting a state computed under other numbers. The algorithm is GCRA (`gcra`): the adapter runs
the same arithmetic on Redis in one script; this pure version documents it and is tested against it.
"""

from __future__ import annotations

import math
from typing import Annotated, Final, Literal, cast, get_args

import msgspec

from domain.identifiers import Identifier

RouteClass = Literal["reads", "writes", "sse", "analytics"]
ROUTE_CLASSES: Final = cast(tuple[RouteClass, ...], get_args(RouteClass))
Unavailable = Literal["open", "closed"]
# Reads fail open (serving them costs little and refusing them all takes a site down); writes fail
# closed (a limit protects the stores behind them, and a write refused can be retried).
DEFAULT_ON_UNAVAILABLE: Final[dict[str, Unavailable]] = {
    "reads": "open",
    "sse": "open",
    "writes": "closed",
    "analytics": "closed",
}
MAX_OVERRIDES: Final = 1000
Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Window = Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class Limit(msgspec.Struct, frozen=True, kw_only=True):
    """`limit` requests per `window_seconds`, admitted as a burst of at most `limit`."""

    limit: Count
    window_seconds: Window

    @property
    def policy(self) -> str:
        return f"q={self.limit};w={self.window_seconds}"


Classes = Annotated[dict[RouteClass, Limit], msgspec.Meta(max_length=len(ROUTE_CLASSES))]
Bytes = Annotated[int, msgspec.Meta(ge=0, le=2**62)]


class ObjectLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The object store's limits for each project of the tenant: the largest object (null: the
    deployment's `max_object_bytes`), and the bytes one project's objects may hold in all (null:
    no limit), as its object index counts them (`app.usecases.objects.Quota` says how exactly)."""

    max_object_bytes: Bytes | None = None
    max_total_bytes: Bytes | None = None


class TenantLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The whole of a tenant's limits (a PUT replaces them): per route class, and overrides."""

    classes: Classes = {}
    projects: Annotated[dict[Identifier, Classes], msgspec.Meta(max_length=MAX_OVERRIDES)] = {}
    users: Annotated[dict[Identifier, Classes], msgspec.Meta(max_length=MAX_OVERRIDES)] = {}
    on_unavailable: Annotated[dict[RouteClass, Unavailable], msgspec.Meta(max_length=len(ROUTE_CLASSES))] = {}
    objects: ObjectLimits | None = None  # not a rate: what the object store holds (`domain.objects`)

    def limit_for(self, project_id: str, user_id: str | None, route_class: RouteClass) -> Limit | None:
        """The most specific limit of the caller's route class; None: not limited."""
        for scope in (self.users.get(user_id or ""), self.projects.get(project_id), self.classes):
            limit = None if scope is None else scope.get(route_class)
            if limit is not None:
                return limit
        return None

    def fails_open(self, route_class: RouteClass) -> bool:
        """Whether a request of `route_class` is admitted when the limiter cannot be reached."""
        return (self.on_unavailable.get(route_class) or DEFAULT_ON_UNAVAILABLE[route_class]) == "open"


class LimitsSet(TenantLimits, frozen=True, kw_only=True):
    """The event (`limits.set`, stream `limits:{tenant}`): a tenant's limits replaced."""

    tenant_id: Identifier


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """One request's answer from the limiter: admitted or not, what is left, and when to retry."""

    allowed: bool
    remaining: int
    reset_seconds: float  # until the bucket is full again
    retry_after: float  # until one request is admitted again (0 when this one was)


def bucket_key(tenant_id: str, project_id: str, user_id: str | None, route_class: str, limit: Limit) -> str:
    """Length-prefixed parts: no identifier can make two buckets share a key."""
    parts = (tenant_id, project_id, user_id or "", route_class, f"{limit.limit}/{limit.window_seconds}")
    return ":".join(f"{len(part)}.{part}" for part in parts)


def gcra(tat: float | None, now: float, limit: Limit) -> tuple[Verdict, float]:
    """GCRA: the verdict for one request at `now`, and the new theoretical arrival time (`tat`).

    Each request moves `tat` one emission interval (`window / limit`) later; a request is admitted
    while `tat` stays within one window of `now` (a burst of `limit`).
    """
    interval = limit.window_seconds / limit.limit
    base = max(tat if tat is not None else now, now)
    new_tat = base + interval
    allow_at = new_tat - limit.window_seconds
    if allow_at > now:
        remaining = max(int((limit.window_seconds - (base - now)) / interval), 0)
        return Verdict(allowed=False, remaining=remaining, reset_seconds=base - now,
                       retry_after=allow_at - now), base  # fmt: skip
    remaining = int((limit.window_seconds - (new_tat - now)) / interval + 1e-9)
    return Verdict(allowed=True, remaining=remaining, reset_seconds=new_tat - now, retry_after=0.0), new_tat


def route_class_of(method: str, opt: dict[str, object]) -> RouteClass:
    """A route's class: its `opt={"rate_limit": …}`, else SSE followers, else by method."""
    chosen = opt.get("rate_limit")
    if chosen in ROUTE_CLASSES:
        return chosen
    if opt.get("follower"):
        return "sse"
    return "reads" if method in {"GET", "HEAD"} else "writes"


def headers_of(route_class: str, limit: Limit, verdict: Verdict) -> dict[str, str]:
    """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, structured fields)."""
    reset = math.ceil(verdict.reset_seconds)
    return {
        "RateLimit-Policy": f'"{route_class}";{limit.policy}',
        "RateLimit": f'"{route_class}";r={verdict.remaining};t={reset}',
    }

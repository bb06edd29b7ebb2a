"""SEO config: one versioned document per page of an (app, surface) of a project.

A config belongs to (tenant, mode, project, app, surface): the partition gives the first three,
and the app and surface are part of both its stream and its view key, so a config saved under one
app or surface is invisible from, and never overwritten by, another. Each page's config is one
stream, `seo:{len(app)}:{app}:{len(surface)}:{surface}:{page}`: its version is the stream's, and a
write's `expected_version` is checked by the append on that stream, never against the view. A
deletion is an event on the same stream (the version goes on counting), and the view drops the doc.

The rules of a config live in `SeoConfig`. Stored events are read back as `ConfigSaved`, which
checks nothing: rules tightened later never stop the projection of configs saved before.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from domain.events import Event, NewEvent
from domain.identifiers import PAGE_PATTERN as PAGE_PATTERN  # slugs: one home
from domain.views import Delete, Upsert, ViewOp

COLLECTION: Final = "seo"
SAVED: Final = "seo.config_saved"
DELETED: Final = "seo.config_deleted"

MAX_TITLE, MAX_DESCRIPTION, MAX_URL = 70, 320, 2048
MAX_ROBOTS = 512
MAX_OPEN_GRAPH, MAX_OG_VALUE = 64, 2048
MAX_LD_BYTES, MAX_LD_OBJECTS = 32 * 1024, 20
# scheme, a host (name or [IPv6]) without credentials, an optional port, then path/query; no fragment
URL_PATTERN: Final = r"^https?://(?:[^\s/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?(?:[/?][^\s#]*)?$"

Page = Annotated[str, msgspec.Meta(pattern=PAGE_PATTERN, description="a page slug: home, blog.post-1")]
Title = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_TITLE,
        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
        description="the page title: 1 to 70 characters, not blank, one line",
    ),
]
Description = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=MAX_DESCRIPTION, pattern=r"\S", description="meta description, not blank"
    ),
]
CanonicalUrl = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_URL,
        pattern=URL_PATTERN,
        description="an absolute http(s) URL without credentials or #fragment",
    ),
]
Robots = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_ROBOTS,
        description="robots meta directives, comma-separated: noindex, nofollow, max-snippet:50…",
    ),
]
OpenGraphKey = Annotated[
    str,
    msgspec.Meta(
        max_length=128,
        pattern=r"^(?:og|fb|twitter|article|book|profile|music|video):[a-z0-9_]+(?::[a-z0-9_]+)*$",
        description="og:title, og:image:width, twitter:card, article:author…",
    ),
]
OpenGraphValue = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_OG_VALUE)]
OpenGraph = Annotated[dict[OpenGraphKey, OpenGraphValue], msgspec.Meta(max_length=MAX_OPEN_GRAPH)]
StructuredData = dict[str, Any] | list[dict[str, Any]]

# Directives of the robots meta tag that search engines document (Google, Bing).
_FLAGS: Final = frozenset(
    {"all", "none", "index", "noindex", "follow", "nofollow", "noarchive", "nocache", "nosnippet",
     "noimageindex", "notranslate", "indexifembedded"}
)  # fmt: skip
_VALUED: Final = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})
_CONTRADICTIONS: Final = (
    ("index", "noindex"),
    ("follow", "nofollow"),
    ("all", "none"),
    ("all", "noindex"),
    ("all", "nofollow"),
    ("none", "index"),
    ("none", "follow"),
)
_IMAGE_PREVIEWS: Final = ("none", "standard", "large")


class SeoConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A page's SEO config as a client writes it; `robots` is normalized (lowercase, `, `)."""

    title: Title
    description: Description | None = None
    canonical_url: CanonicalUrl | None = None
    robots: Robots | None = None
    open_graph: OpenGraph | None = None
    structured_data: StructuredData | None = None

    def __post_init__(self) -> None:
        # ValueError here is reported by msgspec as a validation error: a 422 naming the field.
        if self.canonical_url is not None:
            _check_url(self.canonical_url)
        if self.robots is not None:
            msgspec.structs.force_setattr(self, "robots", normalize_robots(self.robots))
        if self.structured_data is not None:
            check_structured_data(self.structured_data)


class ConfigSaved(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `seo.config_saved`: the whole config of a page, as of this version."""

    app_id: str
    surface_id: str
    page: str
    title: str
    description: str | None = None
    canonical_url: str | None = None
    robots: str | None = None
    open_graph: dict[str, str] | None = None
    structured_data: Any = None
    saved_by: str | None = None


class ConfigDeleted(msgspec.Struct, frozen=True, kw_only=True):
    app_id: str
    surface_id: str
    page: str
    deleted_by: str | None = None


def stream_of(app_id: str, surface_id: str, page: str) -> str:
    """App and surface ids may contain ':', so both are length-prefixed; the page has no ':'."""
    return f"seo:{len(app_id)}:{app_id}:{len(surface_id)}:{surface_id}:{page}"


def scope_prefix(app_id: str, surface_id: str) -> str:
    """The view-key prefix of one (app, surface): no other scope's keys start with it."""
    return f"{len(app_id)}:{app_id}:{len(surface_id)}:{surface_id}:"


def doc_key(app_id: str, surface_id: str, page: str) -> str:
    """Key order within a scope is page order, so a listing pages through slugs alphabetically."""
    return f"{scope_prefix(app_id, surface_id)}{page}"


def saved_event(app_id: str, surface_id: str, page: str, config: SeoConfig, user_id: str | None) -> NewEvent:
    record = ConfigSaved(
        app_id=app_id, surface_id=surface_id, page=page, saved_by=user_id, **msgspec.structs.asdict(config)
    )
    return NewEvent(type=SAVED, data=msgspec.to_builtins(record))


def deleted_event(app_id: str, surface_id: str, page: str, user_id: str | None) -> NewEvent:
    record = ConfigDeleted(app_id=app_id, surface_id=surface_id, page=page, deleted_by=user_id)
    return NewEvent(type=DELETED, data=msgspec.to_builtins(record))


def is_live(last: Event | None) -> bool:
    """Whether a page's stream, ending with `last`, holds a config (not nothing, not a deletion)."""
    return last is not None and last.type == SAVED


def normalize_robots(text: str) -> str:
    """Check robots directives and answer them lowercase, joined by `, `; ValueError says why not."""
    seen: dict[str, str] = {}
    for raw in text.split(","):
        name, colon, value = (part.strip() for part in raw.partition(":"))
        name = name.lower()
        if not name:
            raise ValueError(f"robots: empty directive in {text[:80]!r} (directives are separated by ',')")
        if name in seen:
            raise ValueError(f"robots: directive {name!r} is given twice")
        if name in _FLAGS:
            if colon:
                raise ValueError(f"robots: {name!r} takes no value")
            seen[name] = name
        elif name in _VALUED:
            if not value:
                raise ValueError(f"robots: {name!r} needs a value ({name}:…)")
            seen[name] = f"{name}:{_directive_value(name, value)}"
        else:
            known = ", ".join(sorted(_FLAGS | {f"{v}:…" for v in _VALUED}))
            raise ValueError(f"robots: unknown directive {name!r} (known: {known})")
    for a, b in _CONTRADICTIONS:
        if a in seen and b in seen:
            raise ValueError(f"robots: {a!r} contradicts {b!r}")
    return ", ".join(seen.values())


def _directive_value(name: str, value: str) -> str:
    if name in ("max-snippet", "max-video-preview"):
        if not (re.fullmatch(r"-1|[0-9]{1,9}", value)):
            raise ValueError(f"robots: {name} takes a whole number of at least -1, got {value[:40]!r}")
        return str(int(value))
    if name == "max-image-preview":
        if value.lower() not in _IMAGE_PREVIEWS:
            raise ValueError(f"robots: max-image-preview takes none, standard or large, got {value[:40]!r}")
        return value.lower()
    try:  # unavailable_after: ISO 8601 only (RFC 822/850 dates contain ',', the separator)
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"robots: unavailable_after takes an ISO 8601 date or date-time, got {value[:40]!r}"
        ) from None
    return value


def _check_url(url: str) -> None:
    match = re.match(URL_PATTERN, url)
    if match is not None and match.group(1) is not None and int(match.group(1)) > 65535:
        raise ValueError(f"canonical_url: port {match.group(1)} is out of range: {url[:80]!r}")


def check_structured_data(value: dict[str, Any] | list[dict[str, Any]]) -> None:
    """JSON-LD: an object (or a list of them) with "@context" and "@type", or "@context" and a
    "@graph" of typed objects; at most 32 KiB as JSON."""
    size = len(msgspec.json.encode(value))
    if size > MAX_LD_BYTES:
        raise ValueError(f"structured_data: {size} bytes as JSON, more than {MAX_LD_BYTES}")
    objects = [("structured_data", value)] if isinstance(value, dict) else list(_listed(value))
    for where, item in objects:
        if not _is_context(item.get("@context")):
            raise ValueError(f'{where}: needs "@context" (such as "https://schema.org")')
        graph = item.get("@graph")
        if "@type" not in item and isinstance(graph, list) and graph:
            for n, node in enumerate(graph):
                if not isinstance(node, dict) or not _is_type(node.get("@type")):
                    raise ValueError(f'{where}["@graph"][{n}]: needs "@type" (such as "Article")')
        elif not _is_type(item.get("@type")):
            raise ValueError(f'{where}: needs "@type" (such as "Article"), or a "@graph" of typed objects')


def _listed(value: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    if not value:
        raise ValueError("structured_data: an empty list; send at least one JSON-LD object, or null")
    if len(value) > MAX_LD_OBJECTS:
        raise ValueError(f"structured_data: {len(value)} objects, more than {MAX_LD_OBJECTS}")
    return [(f"structured_data[{n}]", item) for n, item in enumerate(value)]


def _is_context(context: object) -> bool:
    if isinstance(context, str):
        return bool(context.strip())
    return isinstance(context, dict | list) and bool(context)


def _is_type(kind: object) -> bool:
    if isinstance(kind, list):
        return bool(kind) and all(_is_type(k) for k in kind)
    return isinstance(kind, str) and bool(kind.strip())


class SeoProjection:
    """seo.config_saved upserts the page's doc of its (app, surface); seo.config_deleted removes it."""

    name = "seo"
    handles = frozenset({SAVED, DELETED})
    collections = frozenset({COLLECTION})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        if event.type == DELETED:
            gone = msgspec.convert(event.data, ConfigDeleted)
            key = doc_key(gone.app_id, gone.surface_id, gone.page)
            return [Delete(collection=COLLECTION, key=key, position=event.position)]
        saved = msgspec.convert(event.data, ConfigSaved)
        data = {
            "page": saved.page,
            "app_id": saved.app_id,
            "surface_id": saved.surface_id,
            "title": saved.title,
            "description": saved.description,
            "canonical_url": saved.canonical_url,
            "robots": saved.robots,
            "open_graph": saved.open_graph,
            "structured_data": saved.structured_data,
            "version": event.version,
            "position": event.position,
            "updated_at": msgspec.to_builtins(event.recorded_at),
            "updated_by": saved.saved_by,
        }
        key = doc_key(saved.app_id, saved.surface_id, saved.page)
        return [Upsert(collection=COLLECTION, key=key, data=data, position=event.position)]

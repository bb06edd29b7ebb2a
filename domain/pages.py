"""Page content: versioned content blocks per page of an (app, surface) of a project, drafted,
published and rolled back.

A page belongs to (tenant, mode, project, app, surface) like an SEO config: the partition gives
the first three, and the app and surface are length-prefixed in its stream and view keys, so
("a", "b:c") and ("a:b", "c") never share a page. Each page is one stream,
`page_content:{len(app)}:{app}:{len(surface)}:{surface}:{page}`, and every event on it is a
version of the page (its ETag):

- `page_content.draft_saved`: a draft (`PUT …/content/draft`); the published content stays.
- `page_content.published`: new published content, either a copy of a draft's blocks
  (`POST …/publish`, `from_version` the draft's version) or content sent directly
  (`PUT …/content`, `from_version` null). The blocks are copied, so the published content never
  depends on reading another event.
- `page_content.rolled_back`: new published content, a copy of an earlier published version's
  blocks (`POST …/rollback`, `from_version` that version).

Every event also carries the other pointer of the page's state after it (a draft the version of
the published content, a publication the version of the latest draft), so both the decision of
the next write and the projection need the stream's last event only. Stored events are read back
as `PageWritten`, which checks nothing: rules tightened later never stop the projection. Types
and streams are `page_content…`, not `page…`: the generic events API refuses what a route owns, and
`page.viewed` is a client's own event to append.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec

from domain.errors import (
    NoDraftToPublish,
    NotADraft,
    NotAPublishedVersion,
    PageNotFound,
    PageVersionNotFound,
)
from domain.events import Event, NewEvent
from domain.identifiers import BLOCK_ID_PATTERN, BLOCK_TYPE_PATTERN
from domain.identifiers import PAGE_PATTERN as PAGE_PATTERN  # slugs: one home
from domain.views import Upsert, ViewOp

DRAFT_SAVED: Final = "page_content.draft_saved"
PUBLISHED: Final = "page_content.published"
ROLLED_BACK: Final = "page_content.rolled_back"
PAGES: Final = "pages"  # one summary per page: versions of its draft and published content
VERSIONS: Final = "pages.versions"  # every version of every page, blocks included
Change = Literal["draft", "published", "rolled_back"]
CHANGES: Final[dict[str, Change]] = {DRAFT_SAVED: "draft", PUBLISHED: "published", ROLLED_BACK: "rolled_back"}
_PUBLICATIONS: Final = frozenset({PUBLISHED, ROLLED_BACK})

MAX_BLOCKS, MAX_TITLE = 200, 200
MAX_CONTENT_BYTES = 256 * 1024  # the blocks and title as JSON: a view document stays well under item limits

Page = Annotated[str, msgspec.Meta(pattern=PAGE_PATTERN, description="a page slug: home, blog.post-1")]
Title = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_TITLE,
        pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
        description="the page's title: 1 to 200 characters, not blank, one line",
    ),
]
BlockId = Annotated[str, msgspec.Meta(pattern=BLOCK_ID_PATTERN, description="unique within the content")]
BlockType = Annotated[str, msgspec.Meta(pattern=BLOCK_TYPE_PATTERN, description="hero, text, image…")]


class Block(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One block of a page: what a renderer of `type` shows, from `data` (any JSON object)."""

    id: BlockId
    type: BlockType
    data: dict[str, Any] = msgspec.field(default_factory=dict)


Blocks = Annotated[list[Block], msgspec.Meta(max_length=MAX_BLOCKS, description="at most 200, in order")]


class PageContent(msgspec.Struct, frozen=True, kw_only=True):
    """A version of a page's content as a client writes it: every write replaces it whole."""

    blocks: Blocks
    title: Title | None = None

    def __post_init__(self) -> None:
        check_content(self.blocks, self.title)  # a ValueError is a 422 naming what is wrong


def check_content(blocks: list[Block], title: str | None) -> None:
    """Block ids unique, and the whole content at most `MAX_CONTENT_BYTES` as JSON."""
    seen: set[str] = set()
    for n, block in enumerate(blocks):
        if block.id in seen:
            raise ValueError(f"blocks[{n}].id: {block.id!r} is used twice; block ids are unique in a page")
        seen.add(block.id)
    size = len(msgspec.json.encode(blocks)) + len(msgspec.json.encode(title))
    if size > MAX_CONTENT_BYTES:
        raise ValueError(f"blocks: {size} bytes as JSON, more than {MAX_CONTENT_BYTES}")


class PageWritten(msgspec.Struct, frozen=True, kw_only=True):
    """The data of every page event, read back leniently. A draft carries `published_version`
    (the page's published version, null if never published), a publication `draft_version`
    (its latest draft, null if none): the page's state after the event, with the event itself."""

    app_id: str
    surface_id: str
    page: str
    title: str | None = None
    blocks: Any = msgspec.field(default_factory=list)
    from_version: int | None = None
    draft_version: int | None = None
    published_version: int | None = None


class PageState(NamedTuple):
    """A page as its stream's last event leaves it: its version, and those of its latest draft
    and of its published content (None: there is none)."""

    version: int
    draft: int | None
    published: int | None


NEVER_WRITTEN: Final = PageState(0, None, None)


STREAM_PREFIX: Final = "page_content:"


def stream_of(app_id: str, surface_id: str, page: str) -> str:
    """App and surface ids may contain ':', so both are length-prefixed; the page has no ':'."""
    return f"{STREAM_PREFIX}{len(app_id)}:{app_id}:{len(surface_id)}:{surface_id}:{page}"


def scope_prefix(app_id: str, surface_id: str) -> str:
    """The view-key prefix of one (app, surface): no other scope's keys start with it."""
    return f"{len(app_id)}:{app_id}:{len(surface_id)}:{surface_id}:"


def page_key(app_id: str, surface_id: str, page: str) -> str:
    """Key order within a scope is slug order, so the listing pages through slugs alphabetically."""
    return f"{scope_prefix(app_id, surface_id)}{page}"


def versions_prefix(app_id: str, surface_id: str, page: str) -> str:
    """A slug has no ':', so `home:` is the start of no other page's keys (`home2:`, `home.x:`)."""
    return f"{page_key(app_id, surface_id, page)}:"


def version_key(app_id: str, surface_id: str, page: str, version: int) -> str:
    return f"{versions_prefix(app_id, surface_id, page)}{version:012d}"


def state_of(last: Event | None) -> PageState:
    """The page's state after `last`, its stream's last event (None: never written)."""
    if last is None:
        return NEVER_WRITTEN
    record = msgspec.convert(last.data, PageWritten)
    if last.type == DRAFT_SAVED:
        return PageState(last.version, last.version, record.published_version)
    return PageState(last.version, record.draft_version, last.version)


def draft_event(app_id: str, surface_id: str, page: str, content: PageContent, state: PageState) -> NewEvent:
    record = _written(
        app_id, surface_id, page, content.title, content.blocks, published_version=state.published
    )
    return NewEvent(type=DRAFT_SAVED, data=record)


def direct_publish_event(
    app_id: str, surface_id: str, page: str, content: PageContent, state: PageState
) -> NewEvent:
    record = _written(app_id, surface_id, page, content.title, content.blocks, draft_version=state.draft)
    return NewEvent(type=PUBLISHED, data=record)


def decide_publish(
    app_id: str, surface_id: str, page: str, state: PageState, requested: int | None, source: Event | None
) -> NewEvent:
    """Publish the draft at `source` (the version `requested`, or the latest draft when None).

    Raises `PageNotFound` for a page never written, `NoDraftToPublish` when none is requested and
    the page has no draft, `PageVersionNotFound` for a version it does not have, `NotADraft` when
    the version is a published one.
    """
    if state.version == 0:
        raise PageNotFound(page)
    if requested is None and state.draft is None:
        raise NoDraftToPublish(page, state.version)
    wanted = requested if requested is not None else state.draft
    if source is None:
        raise PageVersionNotFound(page, wanted or 0, state.version)
    if source.type != DRAFT_SAVED:
        raise NotADraft(page, source.version, CHANGES.get(source.type, source.type))
    draft = msgspec.convert(source.data, PageWritten)
    record = _written(
        app_id,
        surface_id,
        page,
        draft.title,
        draft.blocks,
        from_version=source.version,
        draft_version=state.draft,
    )
    return NewEvent(type=PUBLISHED, data=record)


def decide_rollback(
    app_id: str, surface_id: str, page: str, state: PageState, to: int, target: Event | None
) -> NewEvent:
    """New published content, a copy of the published version `to` (the event `target`).

    Raises `PageNotFound` for a page never written, `PageVersionNotFound` for a version it does
    not have, `NotAPublishedVersion` when `to` is a draft.
    """
    if state.version == 0:
        raise PageNotFound(page)
    if target is None:
        raise PageVersionNotFound(page, to, state.version)
    if target.type not in _PUBLICATIONS:
        raise NotAPublishedVersion(page, target.version, CHANGES.get(target.type, target.type))
    published = msgspec.convert(target.data, PageWritten)
    record = _written(
        app_id,
        surface_id,
        page,
        published.title,
        published.blocks,
        from_version=to,
        draft_version=state.draft,
    )
    return NewEvent(type=ROLLED_BACK, data=record)


def _written(
    app_id: str,
    surface_id: str,
    page: str,
    title: str | None,
    blocks: Any,
    *,
    from_version: int | None = None,
    draft_version: int | None = None,
    published_version: int | None = None,
) -> dict[str, Any]:
    record = PageWritten(
        app_id=app_id,
        surface_id=surface_id,
        page=page,
        title=title,
        blocks=blocks,
        from_version=from_version,
        draft_version=draft_version,
        published_version=published_version,
    )
    data: dict[str, Any] = msgspec.to_builtins(record)
    return data


class PagesProjection:
    """Per event: the page's summary (its version, and those of its draft and published content)
    and the version's own document, blocks included. Each is the event's own: no op reads
    another document, and a version's document never changes once written."""

    name = "pages"
    handles = frozenset(CHANGES)
    collections = frozenset({PAGES, VERSIONS})
    version = 1

    def apply(self, event: Event) -> list[ViewOp]:
        record = msgspec.convert(event.data, PageWritten)
        drafted = event.type == DRAFT_SAVED
        scope = (record.app_id, record.surface_id, record.page)
        common = {
            "page": record.page,
            "app_id": record.app_id,
            "surface_id": record.surface_id,
            "version": event.version,
            "change": CHANGES[event.type],
            "title": record.title,
            "position": event.position,
        }
        at, by = msgspec.to_builtins(event.recorded_at), event.meta.user_id
        summary = {
            **common,
            "draft_version": event.version if drafted else record.draft_version,
            "published_version": record.published_version if drafted else event.version,
            "updated_at": at,
            "updated_by": by,
        }
        version = {**common, "from_version": record.from_version, "at": at, "by": by, "blocks": record.blocks}
        return [
            Upsert(collection=PAGES, key=page_key(*scope), data=summary, position=event.position),
            Upsert(
                collection=VERSIONS,
                key=version_key(*scope, event.version),
                data=version,
                position=event.position,
            ),
        ]

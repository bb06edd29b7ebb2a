"""`/v1/pages/{page}`: versioned content blocks per page of the caller's app and surface: drafts,
publications and rollbacks, each a version of the page (ETag = the page's version), history kept."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post, put
from litestar.params import JSONBody, Parameter, PathParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, caught_up, served
from app.http.services import Call, CallDep
from app.usecases import pages
from domain.cursor import parse_cursor
from domain.errors import InvalidCursor, PageNotFound, PageNotPublished, PageVersionNotFound
from domain.events import AppendResult, ExpectedVersion
from domain.identifiers import matches
from domain.pages import (
    PAGE_PATTERN,
    PAGES,
    VERSIONS,
    Blocks,
    Change,
    PageContent,
    Title,
    check_content,
    page_key,
    scope_prefix,
    version_key,
    versions_prefix,
)
from domain.ports import EventSpine
from domain.views import ViewDoc
from projections.catalog import VIEWS
from projections.runtime import Runner

VIEW = VIEWS["pages"]
MAX_PAGE = 1000
PageParam = Annotated[
    str, PathParameter(description="the page slug: home, blog.post-1", pattern=PAGE_PATTERN)
]
VersionNumber = Annotated[str, PathParameter(description="a version of the page", pattern=r"^[0-9]{1,18}$")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]
PageVersion = Annotated[int, msgspec.Meta(ge=1, le=10**18)]


class _Sent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every write may send besides its own fields. Unknown fields are refused, so a typo never
    silently drops a field; identity fields may repeat the request's identity (the guard refuses
    any that disagree) and are never stored."""

    expected_version: ExpectedVersion | None = None
    tenant_id: str | None = None
    env: str | None = None
    mode: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None


class ContentBody(_Sent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A page's whole content: every write replaces it."""

    blocks: Blocks
    title: Title | None = None

    def __post_init__(self) -> None:
        check_content(self.blocks, self.title)

    def content(self) -> PageContent:
        return PageContent(blocks=self.blocks, title=self.title)


class PublishBody(_Sent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: PageVersion | None = None  # a draft of the page; none: its latest draft


class RollbackBody(_Sent, frozen=True, kw_only=True, forbid_unknown_fields=True):
    to: PageVersion  # a version of the page that was published (or rolled back to)


class Written(msgspec.Struct, frozen=True, kw_only=True):
    page: str
    version: int
    change: Change
    from_version: int | None
    position: int


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    """The latest draft; `page_version` (the ETag) is the page's version, what If-Match names."""

    page: str
    app_id: str
    surface_id: str
    version: int
    page_version: int
    published_version: int | None
    title: str | None
    blocks: list[Any]
    saved_at: str
    saved_by: str | None


class Published(msgspec.Struct, frozen=True, kw_only=True):
    """The published content; `from_version` is the draft it was published from, or the version
    rolled back to (null: sent directly); `page_version` (the ETag) is the page's version."""

    page: str
    app_id: str
    surface_id: str
    version: int
    page_version: int
    change: Change
    from_version: int | None
    draft_version: int | None
    title: str | None
    blocks: list[Any]
    published_at: str
    published_by: str | None


class PageSummary(msgspec.Struct, frozen=True, kw_only=True):
    page: str
    version: int
    change: Change
    title: str | None
    draft_version: int | None
    published_version: int | None
    updated_at: str
    updated_by: str | None


class PageList(msgspec.Struct, frozen=True, kw_only=True):
    """Pages of the caller's app and surface by slug; `next` (null on the last page) is the cursor."""

    app_id: str
    surface_id: str
    pages: list[PageSummary]
    next: str | None


class VersionSummary(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    change: Change
    title: str | None
    from_version: int | None
    at: str
    by: str | None


class Version(VersionSummary, frozen=True, kw_only=True):
    page: str
    app_id: str
    surface_id: str
    blocks: list[Any]
    position: int


class Versions(msgspec.Struct, frozen=True, kw_only=True):
    page: str
    versions: list[VersionSummary]
    next: int | None


class PagesController(Controller):
    path = "/v1/pages"
    tags = ["pages"]
    opt = {"requires_app": True}  # X-App-Id is required on every page route

    @put(
        "/{page:str}/content/draft",
        summary="Save a draft; expected_version or If-Match makes it a compare-and-set",
    )
    async def save_draft(
        self, page: PageParam, data: JSONBody[ContentBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[Written]:
        wanted = precondition(data.expected_version, if_match)
        result = await pages.save_draft(await _writer(call), call.ctx, page, data.content(), wanted)
        return _written(page, "draft", None, result)

    @put("/{page:str}/content", summary="Save and publish content in one version (no draft)")
    async def publish_content(
        self, page: PageParam, data: JSONBody[ContentBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[Written]:
        wanted = precondition(data.expected_version, if_match)
        result = await pages.publish_content(await _writer(call), call.ctx, page, data.content(), wanted)
        return _written(page, "published", None, result)

    @post(
        "/{page:str}/publish",
        status_code=200,
        summary="Publish a draft (default: the latest) as a new version",
    )
    async def publish(
        self,
        page: PageParam,
        call: CallDep,
        if_match: IfMatch = None,
        data: JSONBody[PublishBody | None] = None,
    ) -> Response[Written]:
        sent = data or PublishBody()  # no body: the latest draft, unconditionally
        wanted = precondition(sent.expected_version, if_match)
        result, draft = await pages.publish(await _writer(call), call.ctx, page, sent.version, wanted)
        return _written(page, "published", draft, result)

    @post("/{page:str}/rollback", status_code=200, summary="Publish again a version that was published")
    async def rollback(
        self, page: PageParam, data: JSONBody[RollbackBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[Written]:
        wanted = precondition(data.expected_version, if_match)
        result, _ = await pages.rollback(await _writer(call), call.ctx, page, data.to, wanted)
        return _written(page, "rolled_back", data.to, result)

    @get("/{page:str}/content/draft", summary="The page's latest draft; ETag: the page's version")
    async def read_draft(
        self, page: PageParam, call: CallDep, min_position: MinPosition = None
    ) -> Response[Draft]:
        runner, summary = await _summary(call, page, min_position)
        if summary is None or summary.data["draft_version"] is None:
            raise PageNotFound(page, what="draft")
        doc = await _version(runner, call, page, summary.data["draft_version"])
        draft = served(_draft(summary.data, doc))
        return Response(draft, headers={"ETag": f'"{draft.page_version}"'})

    @get("/{page:str}/content", summary="The page's published content; ETag: the page's version")
    async def read_published(
        self, page: PageParam, call: CallDep, min_position: MinPosition = None
    ) -> Response[Published]:
        runner, summary = await _summary(call, page, min_position)
        if summary is None or summary.data["published_version"] is None:
            raise PageNotPublished(page)
        doc = await _version(runner, call, page, summary.data["published_version"])
        published = served(_published(summary.data, doc))
        return Response(published, headers={"ETag": f'"{published.page_version}"'})

    @get("/", summary="The pages of the caller's app and surface, by slug, by cursor")
    async def list_pages(
        self,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="page cursor: pages after this slug")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[PageList]:
        if after is not None and not matches(after, PAGE_PATTERN):
            raise InvalidCursor(f"after must be a page slug a listing answered as next, got {after[:40]!r}")
        runner = await caught_up(call, VIEW, min_position)
        app_id, surface_id = pages.scope_of(call.ctx)
        prefix = scope_prefix(app_id, surface_id)
        docs = await runner.list(PAGES, prefix=prefix, after=prefix + (after or ""), limit=limit + 1)
        listed = [msgspec.convert(doc.data, PageSummary) for doc in docs[:limit]]
        more = len(docs) > limit
        answer = PageList(
            app_id=app_id, surface_id=surface_id, pages=listed, next=listed[-1].page if more else None
        )
        return Response(answer)

    @get(
        "/{page:str}/content/versions",
        summary="Every version of the page in order, without blocks, by cursor",
    )
    async def list_versions(
        self,
        page: PageParam,
        call: CallDep,
        after: Annotated[str | None, Parameter(description="a version: the versions after it")] = None,
        limit: Limit = 100,
        min_position: MinPosition = None,
    ) -> Response[Versions]:
        start = parse_cursor(after)
        runner, summary = await _summary(call, page, min_position)
        if summary is None:
            raise PageNotFound(page)
        scope = (*pages.scope_of(call.ctx), page)
        docs = await runner.list(
            VERSIONS, prefix=versions_prefix(*scope), after=version_key(*scope, start), limit=limit + 1
        )
        listed = [msgspec.convert(doc.data, VersionSummary) for doc in docs[:limit]]
        cursor = listed[-1].version if len(docs) > limit else None
        return Response(Versions(page=page, versions=listed, next=cursor))

    @get("/{page:str}/content/versions/{version:str}", summary="One version of the page, blocks included")
    async def read_version(
        self, page: PageParam, version: VersionNumber, call: CallDep, min_position: MinPosition = None
    ) -> Response[Version]:
        runner, summary = await _summary(call, page, min_position)
        if summary is None:
            raise PageNotFound(page)
        number = int(version)  # a path segment: `{version:int}` would answer 404 before the identity guard
        latest = summary.data["version"]
        if not 0 < number <= latest:
            raise PageVersionNotFound(page, number, latest)
        found = served(msgspec.convert(await _version(runner, call, page, number), Version))
        return Response(found, headers={"ETag": f'"{found.version}"'})


async def _writer(call: Call) -> EventSpine:
    """The spine to decide on, once the view that will show the decision is known to be routed."""
    await call.view(VIEW)  # 503 before appending
    return await call.spine()


async def _summary(call: Call, page: str, min_position: str | None) -> tuple[Runner, ViewDoc | None]:
    """The view, and the page's summary (None: the page has no content in this app and surface)."""
    runner = await caught_up(call, VIEW, min_position)
    return runner, await runner.get(PAGES, page_key(*pages.scope_of(call.ctx), page))


async def _version(runner: Runner, call: Call, page: str, number: int) -> dict[str, Any]:
    """A version's document. The summary that names it was written with it, or after it."""
    doc = await runner.get(VERSIONS, version_key(*pages.scope_of(call.ctx), page, number))
    if doc is None:  # a view missing a document its summary names: never answered as a 500
        raise PageVersionNotFound(page, number, number - 1)
    return doc.data


def _draft(summary: dict[str, Any], doc: dict[str, Any]) -> Draft:
    """The draft's version document, with the page's version its summary knows."""
    return Draft(
        page=doc["page"], app_id=doc["app_id"], surface_id=doc["surface_id"], version=doc["version"],
        page_version=summary["version"], published_version=summary["published_version"],
        title=doc["title"], blocks=doc["blocks"], saved_at=doc["at"], saved_by=doc["by"],
    )  # fmt: skip


def _published(summary: dict[str, Any], doc: dict[str, Any]) -> Published:
    """The published version's document, with the page's version and latest draft its summary knows."""
    return Published(
        page=doc["page"], app_id=doc["app_id"], surface_id=doc["surface_id"], version=doc["version"],
        page_version=summary["version"], change=doc["change"], from_version=doc["from_version"],
        draft_version=summary["draft_version"], title=doc["title"], blocks=doc["blocks"],
        published_at=doc["at"], published_by=doc["by"],
    )  # fmt: skip


def _written(page: str, change: Change, from_version: int | None, result: AppendResult) -> Response[Written]:
    body = Written(
        page=page, version=result.stream_version, change=change, from_version=from_version,
        position=result.last_position,
    )  # fmt: skip
    headers = {"X-Spine-Position": str(result.last_position), "ETag": f'"{result.stream_version}"'}
    return Response(body, headers=headers)

"""`/v1/seo/{page}`: versioned SEO config per page of the caller's app and surface (ETag = version)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, put
from litestar.params import JSONBody, Parameter, PathParameter

from app.http.preconditions import IfMatch, precondition
from app.http.reads import MinPosition, caught_up, served
from app.http.services import Call, CallDep
from app.usecases import seo
from domain.errors import InvalidCursor, SeoConfigNotFound
from domain.events import AppendResult, ExpectedVersion
from domain.ports import EventSpine
from domain.seo import (
    COLLECTION,
    PAGE_PATTERN,
    Page,
    SeoConfig,
    doc_key,
    scope_prefix,
)
from projections.catalog import VIEWS

VIEW = VIEWS["seo"]
MAX_PAGE = 1000
PageParam = Annotated[
    str, PathParameter(description="the page slug: home, blog.post-1", pattern=PAGE_PATTERN)
]
After = Annotated[str | None, Parameter(description="page cursor: configs of pages after this slug")]
Limit = Annotated[int, Parameter(ge=1, le=MAX_PAGE, description="page size")]


class ConfigBody(SeoConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A page's whole config (every write replaces it). Unknown fields are refused, so a typo
    never silently drops a field; identity fields may repeat the request's identity (the guard
    refuses any that disagree) and are never stored."""

    expected_version: ExpectedVersion | None = None
    tenant_id: str | None = None
    env: str | None = None
    mode: str | None = None
    project_id: str | None = None
    surface_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None

    def config(self) -> SeoConfig:
        fields = msgspec.structs.asdict(self)
        return SeoConfig(**{name: fields[name] for name in SeoConfig.__struct_fields__})


class PageConfig(msgspec.Struct, frozen=True, kw_only=True):
    page: str
    app_id: str
    surface_id: str
    title: str
    description: str | None
    canonical_url: str | None
    robots: str | None
    open_graph: dict[str, str] | None
    structured_data: Any
    version: int
    position: int
    updated_at: str
    updated_by: str | None


class PageSummary(msgspec.Struct, frozen=True, kw_only=True):
    page: str
    title: str
    version: int
    updated_at: str
    updated_by: str | None


class PageList(msgspec.Struct, frozen=True, kw_only=True):
    """Pages of the caller's app and surface by slug; `next` (null on the last page) is the cursor."""

    app_id: str
    surface_id: str
    pages: list[PageSummary]
    next: str | None


class SeoController(Controller):
    path = "/v1/seo"
    tags = ["seo"]
    opt = {"requires_app": True}  # X-App-Id is required on every SEO route

    @put(
        "/{page:str}",
        summary="Save a page's SEO config; expected_version or If-Match makes it a compare-and-set",
    )
    async def save(
        self, page: PageParam, data: JSONBody[ConfigBody], call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(data.expected_version, if_match)
        spine = await _writer(call)
        result = await seo.save(spine, call.ctx, page, data.config(), wanted)
        return _written({"page": page, "version": result.stream_version}, result)

    @get("/{page:str}", summary="A page's SEO config, with its version as ETag; 404 when absent")
    async def read(
        self, page: PageParam, call: CallDep, min_position: MinPosition = None
    ) -> Response[PageConfig]:
        runner = await caught_up(call, VIEW, min_position)
        doc = await runner.get(COLLECTION, doc_key(*seo.scope_of(call.ctx), page))
        if doc is None:
            raise SeoConfigNotFound(page)
        config = served(msgspec.convert(doc.data, PageConfig))
        return Response(config, headers={"ETag": f'"{config.version}"'})

    @get("/", summary="The pages configured for the caller's app and surface, by slug, by cursor")
    async def list_pages(
        self, call: CallDep, after: After = None, limit: Limit = 100, min_position: MinPosition = None
    ) -> Response[PageList]:
        if after is not None and not _is_page(after):
            raise InvalidCursor(f"after must be a page slug a listing answered as next, got {after[:40]!r}")
        runner = await caught_up(call, VIEW, min_position)
        app_id, surface_id = seo.scope_of(call.ctx)
        prefix = scope_prefix(app_id, surface_id)
        start = "" if after is None else prefix + after
        docs = await runner.list(COLLECTION, prefix=prefix, after=start, limit=limit + 1)
        pages = [msgspec.convert(doc.data, PageSummary) for doc in docs[:limit]]
        more = len(docs) > limit
        answer = PageList(
            app_id=app_id, surface_id=surface_id, pages=pages, next=pages[-1].page if more else None
        )
        return Response(answer)

    @delete(
        "/{page:str}", status_code=200, summary="Delete a page's SEO config (its history stays in the log)"
    )
    async def remove(
        self, page: PageParam, call: CallDep, if_match: IfMatch = None
    ) -> Response[dict[str, Any]]:
        wanted = precondition(None, if_match)
        spine = await _writer(call)
        result = await seo.remove(spine, call.ctx, page, wanted)
        return _written({"page": page, "status": "deleted", "version": result.stream_version}, result)


async def _writer(call: Call) -> EventSpine:
    """The spine to append to, once the view that will show the write is known to be routed."""
    await call.view(VIEW)  # 503 before appending
    return await call.spine()


def _written(body: dict[str, Any], result: AppendResult) -> Response[dict[str, Any]]:
    headers = {
        "X-Spine-Position": str(result.last_position),
        "ETag": f'"{result.stream_version}"',
    }
    return Response({**body, "position": result.last_position}, headers=headers)


def _is_page(text: str) -> bool:
    try:
        msgspec.convert(text, Page)
    except msgspec.ValidationError:
        return False
    return True

"""The calls of page content: drafts, publications, rollbacks and history, per page of the
client's app and surface (the client needs `app_id`).

Every write is a new version of the page; `expected_version` (the `page_version` a read answered)
makes it a compare-and-set (409 `page_content.version_conflict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spine_client._calls import Call, call, min_position_header, present, segment
from spine_client.types import (
    ExpectedVersion,
    PageDraft,
    Pages,
    PageVersion,
    PageVersions,
    PageWritten,
    PublishedPage,
)

Blocks = Sequence[Mapping[str, Any]]
"""Content blocks in order: each `{"id", "type", "data"?}`."""


def save_page_draft(
    page: str, blocks: Blocks, *, title: str | None = None, expected_version: ExpectedVersion | None = None
) -> Call[PageWritten]:
    """Save a draft of a page's whole content; the published content does not change."""
    sent = _content(blocks, title=title, expected_version=expected_version)
    return call("PUT", f"{_page(page)}/content/draft", PageWritten, json=sent)


def publish_page_content(
    page: str, blocks: Blocks, *, title: str | None = None, expected_version: ExpectedVersion | None = None
) -> Call[PageWritten]:
    """Save and publish a page's whole content in one version, without a draft."""
    sent = _content(blocks, title=title, expected_version=expected_version)
    return call("PUT", f"{_page(page)}/content", PageWritten, json=sent)


def publish_page(
    page: str, *, version: int | None = None, expected_version: ExpectedVersion | None = None
) -> Call[PageWritten]:
    """Publish a draft: `version`, or the latest draft (409 `page_content.no_draft` without one)."""
    sent = present(version=version, expected_version=expected_version)
    return call("POST", f"{_page(page)}/publish", PageWritten, json=sent)


def rollback_page(
    page: str, to: int, *, expected_version: ExpectedVersion | None = None
) -> Call[PageWritten]:
    """Publish again the content of `to`, a version that was published."""
    sent = {"to": to, **present(expected_version=expected_version)}
    return call("POST", f"{_page(page)}/rollback", PageWritten, json=sent)


def get_page_content(page: str, *, min_position: int | None = None) -> Call[PublishedPage]:
    """The published content (404 `page_content.not_published` when never published)."""
    return call("GET", f"{_page(page)}/content", PublishedPage, headers=min_position_header(min_position))


def get_page_draft(page: str, *, min_position: int | None = None) -> Call[PageDraft]:
    """The latest draft (404 `page_content.not_found` when there is none)."""
    return call("GET", f"{_page(page)}/content/draft", PageDraft, headers=min_position_header(min_position))


def list_pages(*, after: str | None = None, limit: int = 100, min_position: int | None = None) -> Call[Pages]:
    """Pages of the client's app and surface by slug, with their draft and published versions."""
    params = {"after": after, "limit": limit}
    return call("GET", "/v1/pages", Pages, params=params, headers=min_position_header(min_position))


def list_page_versions(
    page: str, *, after: int = 0, limit: int = 100, min_position: int | None = None
) -> Call[PageVersions]:
    """Every version of a page in order, without blocks."""
    params = {"after": after, "limit": limit}
    path = f"{_page(page)}/content/versions"
    return call("GET", path, PageVersions, params=params, headers=min_position_header(min_position))


def get_page_version(page: str, version: int, *, min_position: int | None = None) -> Call[PageVersion]:
    path = f"{_page(page)}/content/versions/{version}"
    return call("GET", path, PageVersion, headers=min_position_header(min_position))


def _content(blocks: Blocks, **optional: Any) -> dict[str, Any]:
    return {"blocks": [dict(block) for block in blocks], **present(**optional)}


def _page(page: str) -> str:
    return f"/v1/pages/{segment(page)}"

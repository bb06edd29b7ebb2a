"""The page-content methods of the Python client, once, against a live server: each request
reaches its route, and each answer decodes into the client's own types."""

from __future__ import annotations

import pytest

from spine_client import SpineClient, SpineClientError, SyncSpineClient
from spine_client.types import PageDraft, PublishedPage
from tests.clients.conftest import APP, SURFACE, USER

HERO = {"id": "hero", "type": "hero", "data": {"heading": "Rockets"}}
TEXT = {"id": "intro", "type": "text", "data": {"markdown": "We *ship*."}}


async def test_drafts_publications_rollbacks_and_history(client: SpineClient) -> None:
    drafted = await client.save_page_draft("home", [HERO], title="Home")
    assert (drafted.page, drafted.version, drafted.change, drafted.from_version) == ("home", 1, "draft", None)
    draft = await client.get_page_draft("home", min_position=drafted.position)
    assert isinstance(draft, PageDraft)
    assert (draft.app_id, draft.surface_id, draft.title, draft.blocks, draft.saved_by) == (
        APP, SURFACE, "Home", [HERO], USER)  # fmt: skip
    published = await client.publish_page("home", expected_version=draft.page_version)
    assert (published.version, published.change, published.from_version) == (2, "published", 1)
    with pytest.raises(SpineClientError) as stale:
        await client.publish_page("home", version=1, expected_version=1)
    assert (stale.value.status, stale.value.error_code) == (409, "page_content.version_conflict")
    direct = await client.publish_page_content("home", [TEXT])
    back = await client.rollback_page("home", 2, expected_version=direct.version)
    assert (back.version, back.change, back.from_version) == (4, "rolled_back", 2)
    content = await client.get_page_content("home", min_position=back.position)
    assert isinstance(content, PublishedPage)
    assert (content.version, content.page_version, content.blocks, content.draft_version) == (4, 4, [HERO], 1)
    history = await client.list_page_versions("home", after=1, limit=2, min_position=back.position)
    assert ([(v.version, v.change, v.blocks) for v in history.versions], history.next) == (
        [(2, "published", None), (3, "published", None)], 3)  # fmt: skip
    version = await client.get_page_version("home", 3, min_position=back.position)
    assert (version.change, version.blocks, version.title) == ("published", [TEXT], None)
    listed = await client.list_pages(min_position=back.position)
    assert [(p.page, p.version, p.draft_version, p.published_version) for p in listed.pages] == [
        ("home", 4, 1, 4)
    ]


def test_the_sync_client_has_the_same_methods(sync_client: SyncSpineClient) -> None:
    written = sync_client.publish_page_content("about", [TEXT], title="About")
    assert sync_client.get_page_content("about", min_position=written.position).title == "About"
    with pytest.raises(SpineClientError) as refused:
        sync_client.publish_page("about")
    assert (refused.value.status, refused.value.error_code) == (409, "page_content.no_draft")

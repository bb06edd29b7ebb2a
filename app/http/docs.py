"""The docs page at `/schema`: Swagger UI, its scripts and styles served by Spine itself.

Litestar's render plugins load their assets from public CDNs, so the page was blank wherever
those cannot be reached (an air-gapped deployment, a laptop offline). The assets come from the
`swagger-ui-bundle-v2` distribution (Swagger UI's own dist, vendored; version 5, the first to read
OpenAPI 3.1, which Litestar writes) and are served read-only under `/schema/assets/`: a fixed
list of files, no directory listing, public like the rest of `/schema`.

The page's "Authorize" button comes from the bearer scheme the document declares; every guarded
operation names it in `security` (`app.http.openapi`), so the token entered there is sent with
each "Try it out" request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

from litestar import Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import PathParameter
from litestar.response import File
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

ASSETS: Final = "/schema/assets"
_MEDIA_TYPES: Final = {
    "swagger-ui-bundle.js": "text/javascript",  # File adds "; charset=utf-8" to text types
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
_CACHE_CONTROL: Final = "public, max-age=3600"


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI at `/schema` and `/schema/swagger`, with its assets under `/schema/assets/`."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
            path=["/", "/swagger"],
        )

    def receive_router(self, router: Router) -> None:
        router.register(docs_asset)


@get(
    "/assets/{name:str}",  # under the OpenAPI router's /schema, public like all of it (identity_guard)
    include_in_schema=False,
    sync_to_thread=False,
)
def docs_asset(name: Annotated[str, PathParameter(description="the asset's file name")]) -> File:
    """One of the page's assets; any other name is 404."""
    media_type = _MEDIA_TYPES.get(name)
    if media_type is None:
        raise NotFoundException(f"no docs asset {name!r}")
    return File(
        Path(str(swagger_ui_path)) / name,
        media_type=media_type,
        content_disposition_type="inline",
        filename=name,
        headers={"Cache-Control": _CACHE_CONTROL},
    )

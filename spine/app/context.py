"""The single place a request's identity is built.

Until tokens land, the partition comes from `X-Tenant-Id`, `X-Env` and `X-Project-Id`. Every
route takes its partition from the `RequestContext` this returns and from nowhere else, so the
token-based version replaces this one function.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from spine.app.services import SettingsDep
from spine.domain.context import RequestContext
from spine.domain.errors import InvalidContext, MissingContext
from spine.domain.partition import IDENTIFIER_PATTERN, normalize_env

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)

Context = NamedDependency[RequestContext]


def provide_context(request: Request[Any, Any, Any], settings: SettingsDep) -> RequestContext:
    headers = request.headers
    return RequestContext(
        tenant_id=_identifier(headers.get("x-tenant-id"), "X-Tenant-Id"),
        env=_identifier(normalize_env(headers.get("x-env") or settings.default_env), "X-Env"),
        project_id=_identifier(headers.get("x-project-id"), "X-Project-Id"),
        request_id=request.scope["state"].get("request_id"),
    )


def _identifier(value: str | None, header: str) -> str:
    if not value:
        raise MissingContext(header)
    if not _IDENTIFIER.match(value):
        raise InvalidContext(header)
    return value

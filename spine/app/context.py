"""The `ctx` dependency: the `RequestContext` the identity guard built for this request.

Routes take their partition from it and from nowhere else.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from spine.domain.context import RequestContext

Context = NamedDependency[RequestContext]


def provide_context(request: Request[Any, Any, Any]) -> RequestContext:
    context: RequestContext = request.state.ctx
    return context

"""The OpenAPI document, made honest in one place.

Litestar documents each handler's parameters, body and success answer. The rest is declared
here, for every operation at once, as the app registers its routes:
- **who may call it**: the bearer JWT (for bootstrap, the bootstrap key; for the event reads a
  page's EventSource opens, `opt={"ticket": True}`, a stream ticket instead), from the identity
  guard's `opt` (`public`, `context`, `requires_app`, `ticket`);
- **the context headers** the guard reads (`X-Project-Id`, `X-Surface-Id`, `X-App-Id`, `X-Env`, …);
- **every answer it can give** (`app.http.answers`): each status with the `ProblemDetails` body
  and an `enum` of the `error_code`s it may carry;
- **a streamed body** (`opt={"raw_body": True}`: an object's bytes), as binary of any type;
- **the headers of its answers**: `X-Request-Id`, `X-Spine-Position` on writes, `ETag`,
  `X-Spine-Warning` (lab), `Retry-After`, `WWW-Authenticate`, `Allow`.
Litestar builds the document on its first request; each operation is completed then by the
class it is built with (`operation_class`), which holds what its route told at registration.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from app.http.answers import BEFORE_THE_APP, OPERATIONS, WRITES, Answers, Spec, answers_of, operation_keys
from app.http.docs import OfflineSwagger
from app.http.errors import PROBLEM_JSON
from domain.partition import IDENTIFIER_PATTERN

BEARER = "bearer"
BOOTSTRAP_KEY = "bootstrapKey"
STREAM_TICKET = "streamTicket"


class ProblemDetails(msgspec.Struct, kw_only=True):
    """An RFC 9457 problem: every error Spine answers. Some add fields of their own (`field`,
    `errors`, `resource_kind`, …), named in the README's error table."""

    type: str
    title: str
    status: int
    detail: str
    error_code: str
    message: str


@dataclass(frozen=True)
class _Header:
    name: str
    description: str
    required: bool = False
    pattern: str | None = IDENTIFIER_PATTERN


_CONTEXT = {
    "project": _Header("X-Project-Id", "the project the request acts in", required=True),
    "surface": _Header("X-Surface-Id", "the surface (web, mobile, agent…) it comes from", required=True),
    "app": _Header("X-App-Id", "the app it comes from (a known app of the tenant)"),
}
_IDENTITY = (
    _Header("X-Env", "the environment; default the token's, else the deployment's (dev)"),
    _Header("X-Tenant-Id", "may only repeat the token's tenant (403 auth.identity_override otherwise)"),
    _Header("X-User-Id", "may only repeat the token's user (403 auth.identity_override otherwise)"),
    _Header("X-Mode", "may only repeat the tenant record's mode (403 auth.identity_override otherwise)"),
)
_TICKET = (
    "a stream ticket (POST /v1/stream-tickets) instead of `Authorization` and the context headers, for "
    "a page's EventSource; context headers sent along may only repeat it (403 auth.identity_override); "
    "with `Authorization` too, 401 auth.invalid_token; expired, 401 auth.ticket_expired"
)
_REQUEST_ID = _Header(
    "X-Request-Id",
    "echoed in the answer's X-Request-Id; a new one when absent",
    pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
)


@dataclass(frozen=True)
class _Facts:
    security: str | None
    ticket: bool  # a stream ticket may stand in for the bearer token and the context headers
    headers: tuple[_Header, ...]
    answers: Answers
    success: int
    position: bool
    etag: bool
    warning: bool
    truncated: bool
    raw_body: bool  # the body is bytes the handler streams (`opt={"raw_body": True}`), not JSON


class OpenAPIDeclarations(ReceiveRoutePlugin):
    """Declares each operation's security, headers and answers as its route is registered."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            if handler.resolve_include_in_schema():
                declare(handler, route.path_format)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Spine",
        version="0.1.0",
        path="/schema",
        render_plugins=[OfflineSwagger()],  # the page works offline; the JSON stays at /schema/openapi.json
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="a token minted by Spine (lab, dev) or by the configured issuer",
                ),
                BOOTSTRAP_KEY: SecurityScheme(
                    type="apiKey",
                    name="X-Bootstrap-Key",
                    security_scheme_in="header",
                    description="the deployment's bootstrap key (SPINE_BOOTSTRAP_KEY)",
                ),
                STREAM_TICKET: SecurityScheme(
                    type="apiKey",
                    name="ticket",
                    security_scheme_in="query",
                    description="a read-only stream ticket (POST /v1/stream-tickets), for GET /v1/events, "
                    "GET /v1/events/stream and GET /v1/flags/stream only: what a browser's EventSource can send",
                ),
            }
        ),
    )


def declare(handler: HTTPRouteHandler, path: str) -> None:
    """Set the handler's documented answers and the class that completes its operation."""
    keys = operation_keys(handler, path)
    specs = [OPERATIONS.get(key, Spec()) for key in keys]
    if not keys and "HEAD" in handler.http_methods:  # a HEAD answers what its GET does, without a body
        specs = [OPERATIONS.get(f"GET {path}", Spec())]
    opt = handler.opt
    public = bool(opt.get("public"))
    data = not public and opt.get("context", "data") == "data"
    answers = answers_of(handler, specs, public=public, data=data)
    # A handler's own answers below 400 stay (`GET /v1/client.js`: 304); its errors are ours to say.
    own = {status: spec for status, spec in (handler.responses or {}).items() if status < 400}
    handler.responses = own | {
        status: ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_JSON,
            description=_describe(codes),
            generate_examples=False,
        )
        for status, codes in answers
    }
    context: list[_Header] = []
    ticket = bool(opt.get("ticket"))
    if data:
        app = _CONTEXT["app"]
        required_app = _Header(app.name, app.description, required=True)
        context += [
            _by_ticket(_CONTEXT["project"]) if ticket else _CONTEXT["project"],
            _by_ticket(_CONTEXT["surface"]) if ticket else _CONTEXT["surface"],
            required_app if opt.get("requires_app") else app,
        ]
    if not public:
        context += _IDENTITY
    writes = bool(set(handler.http_methods) & WRITES)
    facts = _Facts(
        security=BOOTSTRAP_KEY if "POST /v1/auth/bootstrap" in keys else None if public else BEARER,
        ticket=ticket,
        headers=(*context, _REQUEST_ID),
        answers=answers,
        success=handler.status_code,
        position=all(writes if spec.position is None else spec.position for spec in specs),
        etag=any(spec.etag for spec in specs),
        warning=data,
        truncated=any(spec.truncated for spec in specs),
        raw_body=bool(opt.get("raw_body")),
    )
    handler.operation_class = _documented(facts)


def _by_ticket(header: _Header) -> _Header:
    """A header a stream ticket makes optional: the ticket names the context instead."""
    return _Header(header.name, f"{header.description}; required unless a stream ticket is sent")


def _describe(codes: tuple[str, ...]) -> str:
    return "Problem details; `error_code` is one of: " + ", ".join(f"`{code}`" for code in codes)


@cache  # one class per distinct set of facts, shared by every app: a dataclass is slow to make
def _documented(facts: _Facts) -> type[Operation]:
    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            _complete(self, facts)

    return DocumentedOperation


def _complete(operation: Operation, facts: _Facts) -> None:
    if facts.security is not None:
        operation.security = [{facts.security: []}]
    if facts.ticket:
        operation.security = [*(operation.security or []), {STREAM_TICKET: []}]  # either one
    parameters = list(operation.parameters or [])
    named = {p.name.lower() for p in parameters if isinstance(p, Parameter)}
    parameters += [_parameter(header) for header in facts.headers if header.name.lower() not in named]
    if facts.ticket:
        schema = Schema(type=OpenAPIType.STRING)
        parameters.append(Parameter(name="ticket", param_in="query", description=_TICKET, schema=schema))
    operation.parameters = parameters
    if facts.raw_body:
        binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        operation.request_body = RequestBody(
            content={"*/*": OpenAPIMediaType(schema=binary)},
            required=True,
            description="the bytes, streamed as they come (`Content-Length` or chunked); `Content-Type` is "
            "stored with them (default application/octet-stream)",
        )
    responses = operation.responses or {}
    # Litestar's own 400 (its validation error body) is never answered: Spine answers those 422.
    # Answers below 400 are the handler's own (the success, a 304).
    keep = {str(facts.success), *(str(status) for status, _ in facts.answers)}
    responses = {
        status: answer for status, answer in responses.items() if status in keep or int(status) < 400
    }
    for status, codes in facts.answers:
        answer = responses[str(status)]
        assert isinstance(answer, OpenAPIResponse)
        _problem(answer, status, codes)
    if facts.success not in dict(facts.answers):
        answer = responses[str(facts.success)]
        assert isinstance(answer, OpenAPIResponse)
        answer.headers = {**(answer.headers or {}), **_success_headers(facts)}
    operation.responses = responses


def _problem(answer: OpenAPIResponse, status: int, codes: tuple[str, ...]) -> None:
    media = (answer.content or {})[PROBLEM_JSON]
    assert isinstance(media.schema, Reference)
    codes_schema = Schema(
        type=OpenAPIType.OBJECT,
        properties={
            "status": Schema(type=OpenAPIType.INTEGER, enum=[status]),
            "error_code": Schema(type=OpenAPIType.STRING, enum=list(codes)),
        },
    )
    media.schema = Schema(all_of=[media.schema, codes_schema])
    before_the_app = any((status, code) in BEFORE_THE_APP for code in codes)
    headers = {"X-Request-Id": _REQUEST_ID_OPTIONAL if before_the_app else _REQUEST_ID_ANSWER}
    if status in (429, 503):
        headers["Retry-After"] = _header(
            "seconds to wait before retrying", Schema(type=OpenAPIType.INTEGER, minimum=0)
        )
    if status == 401:
        headers["WWW-Authenticate"] = _header('`Bearer realm="spine"`', Schema(type=OpenAPIType.STRING))
    if status == 405:
        headers["Allow"] = _header("the methods the path allows", Schema(type=OpenAPIType.STRING))
    answer.headers = {**(answer.headers or {}), **headers}


def _success_headers(facts: _Facts) -> dict[str, OpenAPIHeader | Reference]:
    headers: dict[str, OpenAPIHeader | Reference] = {"X-Request-Id": _REQUEST_ID_ANSWER}
    if facts.position:
        headers["X-Spine-Position"] = _header(
            "the position of the write in the partition's log: send it as X-Spine-Min-Position to read it",
            Schema(type=OpenAPIType.INTEGER, minimum=0),
        )
    if facts.etag:
        headers["ETag"] = _header(
            'the version, as `"3"`: send it back as If-Match',
            Schema(type=OpenAPIType.STRING, pattern='^"[0-9]+"$'),
        )
    if facts.truncated:
        headers["X-Spine-Truncated"] = _header(
            "retention removed events up to this position: the answer holds what survived of them",
            Schema(type=OpenAPIType.INTEGER, minimum=1),
            required=False,
        )
    if facts.warning:
        headers["X-Spine-Warning"] = _header(
            "lab only: the codes of missing routes the embedded store stood in for",
            Schema(type=OpenAPIType.STRING),
            required=False,
        )
    return headers


def _header(description: str, schema: Schema, *, required: bool = True) -> OpenAPIHeader:
    return OpenAPIHeader(description=description, schema=schema, required=required)


_REQUEST_ID_ANSWER = _header(
    "the request's id: the client's X-Request-Id, or a new one", Schema(type=OpenAPIType.STRING)
)
_REQUEST_ID_OPTIONAL = _header(
    "the request's id, when the app answered (not a refusal before it)",
    Schema(type=OpenAPIType.STRING),
    required=False,
)


def _parameter(header: _Header) -> Parameter:
    schema = Schema(type=OpenAPIType.STRING, pattern=header.pattern)
    return Parameter(
        name=header.name,
        param_in="header",
        required=header.required,
        description=header.description,
        schema=schema,
    )

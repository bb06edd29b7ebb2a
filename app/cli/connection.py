"""How the commands that talk to a running Spine reach it: through the Python client, `SyncSpineClient`.

Every such command is one or more HTTP calls through `Api`, each one `SyncSpineClient.request`: a
problem+json answer becomes a `ClickException` reading `<status> <error_code>: <message>`, and no
answer becomes "cannot reach URL" (or "no answer within …"). The bearer token goes in the
`Authorization` header only: it is never printed, and it is scrubbed from every message shown.
Also here: the `--url`/`--token` options (`connection`), `--json` (`json_flag`), and how tables
show data (`new_console`, `cell`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import click
import httpx
from rich.console import Console
from rich.text import Text

from spine_client import NO_RETRY, SpineClientError, SpineConnectionError, SpineTimeoutError, SyncSpineClient

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 30.0
# What may go in an HTTP header: visible ASCII. Anything else is refused before it is sent, since
# the HTTP library would echo the whole header (token included) in its own error.
_TOKEN_SHAPE = re.compile(r"[\x21-\x7e]+")


class ProblemError(click.ClickException):
    """A non-2xx answer: `<status> <error_code>: <message>`."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code


class Api:
    """One running Spine, as one token sees it."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._token = token.strip()
        if not _TOKEN_SHAPE.fullmatch(self._token):
            raise click.BadParameter(
                "the token must be printable ASCII without spaces (its value is not shown)",
                param_hint="'--token' / SPINE_TOKEN",
            )

    def call(
        self, method: str, path: str, *, params: dict[str, str | None] | None = None, body: Any = None
    ) -> httpx.Response:
        """A 2xx JSON answer, or a `ClickException` that never holds the token."""
        return request(self.url, method, path, token=self._token, params=params, body=body)


def request(
    url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    params: dict[str, str | None] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One call of a running Spine, from synchronous code: a 2xx answer holding a JSON object, or a
    `ClickException` in which neither the token nor any header value sent is shown."""
    secrets = [value for value in (token, *(headers or {}).values()) if value]

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    # No retries: a command says at once what went wrong, and its user decides whether to run it again
    try:
        with SyncSpineClient(
            url, token=token, headers=headers, timeout=TIMEOUT_SECONDS, retry=NO_RETRY
        ) as client:
            response = client.request(method, path, params=params, json=body)
    except SpineClientError as exc:
        raise ProblemError(exc.status, exc.error_code, scrub(exc.message)) from None
    except SpineTimeoutError as exc:
        raise click.ClickException(
            scrub(f"no answer from {url} within {TIMEOUT_SECONDS:g} s ({type(exc.__cause__).__name__})")
        ) from None
    except SpineConnectionError as exc:
        raise click.ClickException(scrub(f"cannot reach {url}: {exc.__cause__ or exc}")) from None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):  # every answer of these routes is a JSON object
        raise click.ClickException(
            f"{url} answered {method} {path} with {response.status_code} but no JSON object: is it Spine?"
        )
    return response


def connection(command: Callable[..., None]) -> Callable[..., None]:
    """`--url` and `--token`, given to the command as one `Api`."""

    @click.option(
        "--token",
        envvar="SPINE_TOKEN",
        required=True,
        help="Bearer token [env SPINE_TOKEN; prefer it: arguments are visible to other local users].",
    )
    @click.option(
        "--url",
        envvar="SPINE_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The running Spine service [env SPINE_URL].",
    )
    @functools.wraps(command)
    def with_api(url: str, token: str, **options: Any) -> None:
        command(Api(url, token), **options)

    return with_api


json_flag = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer as it is.")


def new_console() -> Console:
    # made per call, so that it writes to the stdout of the moment (CliRunner swaps it)
    return Console(highlight=False)


def cell(value: Any) -> Text:
    """A table cell that shows data as it is: never read as rich markup (`[red]` in a note stays)."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, sort_keys=True) if value else "-")
    return Text(str(value))

"""The one `SecretResolver`: `secret://env/…` (lab and dev only), `secret://file/…`, `secret://aws-sm/…`.

Spine's own secrets are never resolved for a route: no `SPINE_*` variable, and files only inside
the secrets directory (`SPINE_SECRETS_DIR`; none when unset), never Spine's own key files, after
following symbolic links. The rule is the domain's (`own_secret_reason`), checked again here because
a record written by an older version was never held to it.

Resolved values are kept in memory for a short TTL, so a hot path that opens backends does not read
a file or call AWS per request; only successes are kept, so a secret that appears is seen at once.
No message raised here carries a value: file contents and AWS answers are never quoted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import aioboto3  # type: ignore[import-untyped]
import anyio
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from domain.errors import InvalidSecretRef, SecretUnavailable
from domain.secrets import SecretFiles, SecretRef, own_secret_reason, parse_secret_ref

DEFAULT_TTL_SECONDS = 60.0
_AWS_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


class ChainSecretResolver:
    """Resolves a reference by its scheme; `files` says where secret files may be (absolute paths);
    `clock` (monotonic seconds) is injectable for tests."""

    def __init__(
        self,
        *,
        allow_env: bool,
        files: SecretFiles,
        aws_region: str | None = None,
        aws_endpoint_url: str | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allow_env = allow_env
        self._files = files
        self._aws_region = aws_region
        self._aws_endpoint_url = aws_endpoint_url
        self._ttl = ttl_seconds
        self._clock = clock
        self._aws_session: aioboto3.Session | None = None
        self._cache: dict[str, tuple[str, float]] = {}

    async def resolve(self, ref: str) -> str:
        cached = self._cache.get(ref)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        parsed = parse_secret_ref(ref)
        reason = own_secret_reason(parsed, self._files)
        if reason is not None:
            raise InvalidSecretRef(ref, reason)
        match parsed.scheme:
            case "env":
                value = self._from_env(ref, parsed)
            case "file":
                value = await self._from_file(ref, parsed)
            case "aws-sm":
                value = await self._from_aws(ref, parsed)
        if not value:
            raise SecretUnavailable(ref, "the secret is empty")
        self._cache[ref] = (value, self._clock() + self._ttl)
        return value

    def _from_env(self, ref: str, parsed: SecretRef) -> str:
        if not self._allow_env:
            raise InvalidSecretRef(ref, "secret://env/… is allowed only in lab and dev")
        value = os.environ.get(parsed.name)
        if value is None:
            raise SecretUnavailable(ref, f"environment variable {parsed.name} is not set")
        return value

    async def _from_file(self, ref: str, parsed: SecretRef) -> str:
        root = self._files.root
        if root is None:  # `own_secret_reason` has refused it already
            raise InvalidSecretRef(ref, "this deployment reads no secret files")
        path = Path(root) / parsed.name  # an absolute name (inside the root) replaces it
        try:
            real = await anyio.Path(path).resolve(strict=True)
            await self._confine(ref, real, root)
            text = await real.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # it quotes the file's bytes, and holds them all: not chained
            raise SecretUnavailable(ref, f"{path} is not UTF-8 text") from None
        except OSError as exc:
            raise SecretUnavailable(ref, f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
        return _strip_one_newline(text)

    async def _confine(self, ref: str, real: anyio.Path, root: str) -> None:
        """A symbolic link may lead out of the directory the name is inside of: the target is what
        counts. Where it leads is not said: the route's writer need not learn the host's layout."""
        inside = await anyio.Path(root).resolve()
        own = None if self._files.own is None else await anyio.Path(self._files.own).resolve()
        if not real.is_relative_to(inside) or (own is not None and real.is_relative_to(own)):
            raise InvalidSecretRef(ref, "a symbolic link leads out of the secrets directory")

    async def _from_aws(self, ref: str, parsed: SecretRef) -> str:
        if self._aws_session is None:
            self._aws_session = aioboto3.Session()
        with _translate_aws_errors(ref):
            async with self._aws_session.client(
                "secretsmanager",
                region_name=self._aws_region,
                endpoint_url=self._aws_endpoint_url,
                config=_AWS_CONFIG,
            ) as client:
                answer = await client.get_secret_value(SecretId=parsed.name)
        value = answer.get("SecretString")
        if not isinstance(value, str):
            raise SecretUnavailable(ref, "the secret has no SecretString (binary secrets are not supported)")
        return value


def _strip_one_newline(text: str) -> str:
    """The newline editors add at the end of a file is not part of the secret; other spaces are."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


@contextmanager
def _translate_aws_errors(ref: str) -> Iterator[None]:
    """AWS SDK errors become `SecretUnavailable`, named by their code or class, never their text."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "ClientError")
        raise SecretUnavailable(ref, f"AWS Secrets Manager answered {code}") from exc
    except BotoCoreError as exc:  # EndpointConnectionError, NoCredentialsError, NoRegionError, timeouts
        raise SecretUnavailable(ref, f"AWS Secrets Manager is unreachable ({type(exc).__name__})") from exc

"""Browser origins: the one rule for an origin an app may list for CORS.

An origin is listed exactly as a browser sends it in the `Origin` header (the serialization of
RFC 6454 §6.2 that the Fetch standard uses): `scheme://host[:port]`, scheme `http` or `https`, a
lowercase host (an IDN in its punycode form, `xn--…`; an IPv6 address in brackets), a port only
when it is not the scheme's default, and nothing else — no path, query, fragment, user info or
trailing slash. CORS compares origins as strings, so anything a browser never sends (`HTTPS://`,
`:443` on https, a wildcard) could never match: it is refused when the app is written rather than
stored to fail silently. `null` (sandboxed frames, `file:` pages) and `*` are refused too: either
would let any page read a tenant's answers.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST: Final = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]{{2,45}}\])"
_PORT: Final = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# The lookaheads refuse the default ports, which a browser leaves out of the origin it sends;
# `(?!\n)` refuses a trailing newline, as elsewhere (domain.identifiers).
ORIGIN_PATTERN: Final = rf"^(?!http://.*:80$)(?!https://.*:443$)https?://{_HOST}(?::{_PORT})?$(?!\n)"
MAX_ORIGINS: Final = 50
"""Origins one app may list."""

Origin = Annotated[
    str,
    msgspec.Meta(
        pattern=ORIGIN_PATTERN,
        max_length=300,
        description="a browser origin as the Origin header sends it: scheme://host[:port], lowercase,"
        " no path or trailing slash, no default port",
        examples=["https://app.example.com", "http://localhost:5173"],
    ),
]
Origins = Annotated[
    list[Origin],
    msgspec.Meta(
        max_length=MAX_ORIGINS,
        # said here too: Litestar's OpenAPI document leaves out the constraints of a list's items
        description=f"the browser origins allowed to call Spine for the tenant (CORS), at most {MAX_ORIGINS}:"
        " each scheme://host[:port] exactly as the Origin header sends it (http or https, lowercase host,"
        " no default port, no path or trailing slash); * and null are refused",
        examples=[["https://app.example.com", "http://localhost:5173"]],
    ),
]


def unique(origins: list[str]) -> list[str]:
    """The origins in the order given, each once: a list is a set to CORS."""
    return list(dict.fromkeys(origins))

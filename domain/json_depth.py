"""How deeply a JSON document may nest: the rule every body meets, and the bound every stored
document must stay within to be served.

Why a limit at all: msgspec (like CPython's own json) recurses once per level of nesting, and on
Python 3.11 that recursion counts against the interpreter's recursion limit (1000) together with
the Python frames already on the stack. A handler that decodes a body ~30 frames deep accepts
about 969 levels; answering that document later means encoding it ~40 frames deep, inside a
response that wraps it in a few more levels: `RecursionError`, a 500 on every read. Deeper still,
the body's own decode fails: a 500 on the write. So depth is checked on the bytes, before anything
decodes them, and the limits sit far below what any stack can take.

`exceeds` costs two `bytes.count` calls unless the document holds more opening brackets than the
limit, which small bodies (the hot append path) never do; only then does it look closer, with a
few passes of C-level byte operations (no Python loop over the document).
"""

from __future__ import annotations

from typing import Final

import msgspec

from domain.errors import JsonTooDeep

DEFAULT_MAX_DEPTH: Final = 64
"""Bodies nest at most this deep unless `max_json_depth` says otherwise; plenty for any payload."""

MAX_SETTABLE_DEPTH: Final = 128
"""The highest `max_json_depth` an operator may set: documents derived from such bodies still
stay well inside `SERVED_DEPTH`."""

SERVED_DEPTH: Final = 256
"""A stored document (or a part of an answer) nesting deeper than this is never sent: only an older
version, without the body limit, could have written it. A fixed bound, not the setting, so that
lowering `max_json_depth` never hides what was accepted before, and far enough under the
recursion limit that encoding never depends on how deep the stack happens to be."""

# Brackets become parentheses and quotes stay; every other byte goes.
_PARENS: Final = bytes.maketrans(b"[]{}", b"()()")
_NOT_KEPT: Final = bytes(b for b in range(256) if b not in b'[]{}"')
_encoder: Final = msgspec.json.Encoder()


def exceeds(document: bytes, limit: int) -> bool:
    """Whether `document` nests deeper than `limit` (`1` has depth 0, `[]` and `{}` depth 1).

    Exact for valid JSON. For invalid JSON it never answers less than the depth a decoder would
    reach before finding the error, so a decoder given a document this accepts never recurses
    deeper than `limit`.
    """
    if document.count(b"[") + document.count(b"{") <= limit:
        return False  # fewer opening brackets than the limit: it cannot nest deeper
    brackets = _brackets(document)
    if b"(" * (limit + 1) in brackets:
        return True  # the usual attack, `[[[[…`, found in one search
    # Each pass removes the innermost pairs, one level of every branch at once.
    for peeled in range(limit):
        if b"(" not in brackets:
            return False
        inner = brackets.replace(b"()", b"")
        if len(inner) == len(brackets):  # no pair left, only unmatched brackets: count the openers
            return peeled + brackets.count(b"(") > limit
        brackets = inner
    return b"(" in brackets


def _brackets(document: bytes) -> bytes:
    """The document's brackets outside strings, as `(` and `)`: what nests."""
    if b"\\" in document:
        # Escaped backslashes first (a run of them pairs up from its left), then escaped quotes:
        # every quote left opens or closes a string.
        document = document.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Two quotes side by side are an empty string, or the end of one and the start of the next:
    # either way the quotes around them still alternate, opening and closing strings.
    kept = document.translate(_PARENS, _NOT_KEPT).replace(b'""', b"")
    return b"".join(kept.split(b'"')[::2]) if b'"' in kept else kept  # what lies between strings


def check_depth(body: bytes, limit: int) -> None:
    """Raise `JsonTooDeep` unless `body` nests at most `limit` deep."""
    if exceeds(body, limit):
        raise JsonTooDeep(limit)


def value_exceeds(value: object, limit: int) -> bool:
    """Whether a decoded value (builtins or Structs) would encode nesting deeper than `limit`.

    A value too deep to encode at all, here, is deeper than any limit this module allows.
    """
    try:
        encoded = _encoder.encode(value)
    except RecursionError:
        return True
    return exceeds(encoded, limit)

"""The JSON depth rule (`domain.json_depth`) and how reads serve what nests too deep
(`app.http.reads.served`, `served_each`, and the mapper's answer to an encoder's RecursionError)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, get
from litestar.testing import TestClient

from app.http.errors import exception_handlers
from app.http.reads import Problem, served, served_each
from domain.errors import JsonTooDeep, Unreadable
from domain.json_depth import SERVED_DEPTH, check_depth, exceeds, value_exceeds


def depth(document: str) -> int:
    """The reference: the deepest nesting a decoder can reach, counting brackets outside strings
    up to the first backslash outside one (where any decoder stops: nothing can follow it)."""
    level = deepest = 0
    in_string = escaped = False
    for char in document:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "\\":
            break
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


# Strings full of what the rule must not count: brackets, quotes, backslashes.
tricky_text = st.text(alphabet='[]{}"\\ab/', max_size=8)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=40,
)


def deep(levels: int, inner: Any) -> Any:
    for _ in range(levels):
        inner = [inner]
    return inner


@given(values, st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=8))
def test_the_rule_is_exact_for_valid_json(value: Any, extra: int, limit: int) -> None:
    document = json.dumps(deep(extra, value), indent=1 if extra % 2 else None)
    assert exceeds(document.encode(), limit) == (depth(document) > limit)
    assert exceeds(document.encode(), 64) == (depth(document) > 64)


@given(st.text(alphabet='[]{}"\\a, ', max_size=300), st.integers(min_value=0, max_value=6))
def test_any_bytes_nesting_deeper_than_the_limit_are_caught(document: str, limit: int) -> None:
    """Invalid JSON too: a decoder never recurses deeper than a document the rule lets through."""
    if depth(document) > limit:
        assert exceeds(document.encode(), limit)


@pytest.mark.parametrize(
    ("document", "nesting"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a":[{"b":"[[[[[[[["}]}', 3),
        (b'["\\\\", ["\\"[[[[[[[[", []]]', 3),
        (b"[" * 100_000 + b"]" * 100_000, 100_000),
        (b"[" * 100_000, 100_000),  # never closed
        (b"]" * 100 + b"[" * 3, 3),  # a decoder stops at the first `]`
    ],
)
def test_known_documents(document: bytes, nesting: int) -> None:
    assert exceeds(document, 64) == (nesting > 64)
    assert not exceeds(document, nesting)
    if nesting:
        assert exceeds(document, nesting - 1)


def test_check_depth_raises_the_request_error() -> None:
    check_depth(b'{"a":' * 63 + b"{}" + b"}" * 63, 64)
    with pytest.raises(JsonTooDeep) as raised:
        check_depth(b'{"a":' * 64 + b"{}" + b"}" * 64, 64)
    assert (raised.value.error_code, raised.value.details()) == ("request.too_deep", {"max_depth": 64})


def test_a_value_too_deep_to_encode_exceeds_any_limit() -> None:
    assert value_exceeds(deep(5_000, None), SERVED_DEPTH)
    assert not value_exceeds(deep(SERVED_DEPTH, None), SERVED_DEPTH)
    assert value_exceeds(deep(SERVED_DEPTH + 1, None), SERVED_DEPTH)


class Item(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    payload: Any
    other: Any = None
    problem: Problem = msgspec.UNSET


def test_served_answers_a_document_within_the_bound_and_refuses_a_deeper_one() -> None:
    fine = Item(id=1, payload=deep(SERVED_DEPTH - 1, 1))
    assert served(fine) is fine
    with pytest.raises(Unreadable) as raised:
        served(Item(id=2, payload=deep(SERVED_DEPTH, 1)))
    assert raised.value.error_code == "view.unreadable"


@pytest.mark.parametrize("too_deep", [SERVED_DEPTH, 900, 5_000])
def test_served_each_marks_only_the_items_too_deep(too_deep: int) -> None:
    items = [
        Item(id=1, payload={"a": 1}),
        Item(id=2, payload=deep(too_deep, 1), other="kept"),
        Item(id=3, payload=deep(SERVED_DEPTH - 1, 1)),
    ]
    answered = served_each(items)
    assert [answered[0], answered[2]] == [items[0], items[2]]
    marked = answered[1]
    assert (marked.id, marked.payload, marked.other) == (2, None, "kept")
    assert isinstance(marked.problem, msgspec.Struct)
    assert msgspec.to_builtins(marked.problem)["fields"] == ["payload"]
    assert b'"problem"' not in msgspec.json.encode(answered[0])


def test_served_each_leaves_a_usual_list_as_it_is() -> None:
    items = [Item(id=n, payload={"n": [n, {"m": n}]}) for n in range(2_000)]
    assert served_each(items) is items


def test_an_encoder_recursion_error_is_a_problem_not_a_500() -> None:
    """The mapper's last line: whatever reads stored JSON without checking it first."""

    @get("/deep", sync_to_thread=False)
    def too_deep() -> Any:
        return deep(5_000, None)

    @get("/bug", sync_to_thread=False)
    def bug() -> None:
        def again() -> None:
            again()

        again()

    with TestClient(Litestar([too_deep, bug], exception_handlers=exception_handlers)) as client:
        answer = client.get("/deep")
        assert (answer.status_code, answer.json()["error_code"]) == (422, "document.unreadable")
        assert client.get("/bug").status_code == 500  # any other recursion is a bug, not a document

"""Identifiers: one pattern each, checked however a value arrives; stored keys never raise."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.local_notifier import LocalNotifier
from adapters.memory.spine import MemorySpine
from domain.append import AppendRequest
from domain.errors import InvalidIdentifier, InvalidRequest
from domain.events import EventMeta, NewEvent
from domain.identifiers import (
    DOCUMENT_ID_PATTERN,
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    PAGE_PATTERN,
    UNIT_PATTERN,
    VIEW_NAME_PATTERN,
    check,
    matches,
)
from domain.partition import Partition
from projections.control_plane import ControlPlaneProjector

PATTERNS = [
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    DOCUMENT_ID_PATTERN,
    PAGE_PATTERN,
    UNIT_PATTERN,
    VIEW_NAME_PATTERN,
]
MALFORMED = ["a/b", "bad env", "", "x" * 200, ".", "..", "%2F", "-x", "~x", "é", "abc\n", "a\x00b"]
# what an identifier generator should try: separators, spaces, unicode, dots, escapes, lengths
HOSTILE = st.one_of(
    st.sampled_from([*MALFORMED, "ok", "a.b:c-d_e", "_audit", "x" * 128, "x" * 129]),
    st.text(max_size=300),
    st.from_regex(r"[A-Za-z0-9_./%~ :@+=-]{0,140}", fullmatch=True),
)


@pytest.mark.parametrize("field", ["tenant_id", "env", "project_id"])
@pytest.mark.parametrize("value", MALFORMED)
def test_a_partition_of_a_malformed_id_cannot_be_built(field: str, value: str) -> None:
    ids = {"tenant_id": "t1", "env": "dev", "project_id": "p1", field: value}
    with pytest.raises(InvalidIdentifier) as raised:
        Partition(**ids)
    assert raised.value.field == field
    assert isinstance(raised.value, InvalidRequest)  # a 422 for the one error mapper


def test_a_partition_of_good_ids_is_built_and_keyed() -> None:
    partition = Partition(tenant_id="t1", env="dev", project_id="p.1:x-y")
    assert Partition.from_key(partition.key) == partition


@pytest.mark.parametrize(
    "key",
    ["t1/a/b/p1", "t1/dev", "t1", "", "t1//p1", "t1/bad env/p1", "/dev/p1", "t1/dev/p1/", "t1/dev/p1\n"],
)
def test_a_malformed_stored_key_raises_the_domain_error_never_a_value_error(key: str) -> None:
    with pytest.raises(InvalidIdentifier):
        Partition.from_key(key)


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=60, deadline=None)
@given(value=HOSTILE)
def test_the_rule_in_code_is_the_rule_msgspec_applies(pattern: str, value: str) -> None:
    """`check` (constructors, claims, stored keys) and msgspec (bodies, paths) agree on every value."""
    typed = Annotated[str, msgspec.Meta(pattern=pattern)]
    try:
        msgspec.convert(value, typed)
        decoded = True
    except msgspec.ValidationError:
        decoded = False
    assert matches(value, pattern) == decoded
    if decoded:
        assert check("field", value, pattern) == value
        assert "/" not in value
        assert value not in (".", "..")
        assert not value[0].isspace()


def test_a_check_names_the_field() -> None:
    with pytest.raises(InvalidIdentifier) as raised:
        check("run", "a/b", NAME_PATTERN)
    assert raised.value.details() == {"field": "run"}
    assert raised.value.error_code == "request.invalid"


async def test_the_control_plane_skips_a_stored_record_that_does_not_decode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Records an older version could have written: the projection goes on past them."""
    spine, system = MemorySpine(), Partition.system("dev")
    meta = EventMeta(tenant_id="t_system", env="dev", project_id="_")

    async def record(stream: str, type_: str, data: dict[str, Any]) -> None:
        request = AppendRequest(stream=stream, events=[NewEvent(type=type_, data=data)], meta=meta)
        await spine.append(system, request)

    await record("tenant:t1", "tenant.created", {"tenant_id": "t1", "name": "t1", "mode": "lab"})
    await record("project:t1:bad", "project.created", {"tenant_id": "t1", "project_id": "a/b", "name": "x"})
    bad_route = {"resource_kind": "memory_store", "tenant_id": "t1", "env": "a/b", "backend_type": "memory"}
    await record("route:bad", "route.set", bad_route)
    await record("project:t1:p1", "project.created", {"tenant_id": "t1", "project_id": "p1", "name": "p1"})
    projector = ControlPlaneProjector(spine, LocalNotifier(), system)
    assert await projector.catch_up() == 4
    assert list(projector.state.projects) == [("t1", "p1")]
    assert projector.registry.routes == {}
    skipped = [r for r in caplog.records if r.name.startswith("spine.") and "skipped" in r.getMessage()]
    assert [r.__dict__["position"] for r in skipped] == [2, 3]

"""KPI series under random values, through the HTTP API only.

Each example drives a fresh service with values (single or batched, some with a client `id` that a
later value repeats: a retry, counted once) sent from apps and surfaces whose ids would collide if
joined naively, with runs, at times spread over three days and up to five minutes ahead, then
checks that every series (each bucket size, each dimension, every dimension value) equals a model
computed here from the raw values — count, sum, min, max and last exactly, p50 and p95 within 1% —
and that after a rebuild from position 0 every series answers exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.http.factory import create_app
from app.settings import Settings
from domain.sketch import ACCURACY
from tests.http.conftest import Clock
from tests.provision import BOOTSTRAP_KEY, admin_headers_sync, provision_sync

PROPERTY = settings(max_examples=20, deadline=None)
NOW = datetime(2026, 3, 10, 12, 30, 15, tzinfo=UTC)
APPS = (None, "a", "a:b")
SURFACES = ("b:c", "c", "web")  # with APPS: ("a", "b:c") and ("a:b", "c")
RUNS = (None, "r1", "r1:x")
IDS = (None, None, "v1", "v2", "v3")  # repeated ids: retries
OFFSETS = (-3 * 86400 + 7, -86400, -3600 * 5 - 1, -61, -60, -59, -1, 0, 0, 1, 299, 300)  # seconds from now
SPANS = {"minute": timedelta(days=3, minutes=10), "hour": timedelta(days=4), "day": timedelta(days=5)}


@dataclass(frozen=True)
class Sent:
    value: float
    offset: int  # seconds from now, when `at` is sent
    run_id: str | None
    id: str | None
    default_time: bool  # `at` left out: the server's clock (NOW)


@dataclass(frozen=True)
class Post:
    app: str | None
    surface: str
    values: list[Sent]
    batch: bool


sent = st.builds(
    Sent,
    st.integers(-4000, 4000).map(lambda n: n / 4),  # quarters: sums are exact in any order
    st.sampled_from(OFFSETS),
    st.sampled_from(RUNS),
    st.sampled_from(IDS),
    st.booleans(),
)
posts = st.one_of(
    st.builds(
        Post,
        st.sampled_from(APPS),
        st.sampled_from(SURFACES),
        st.lists(sent, min_size=1, max_size=1),
        st.just(False),
    ),
    st.builds(
        Post,
        st.sampled_from(APPS),
        st.sampled_from(SURFACES),
        st.lists(sent, min_size=1, max_size=6),
        st.just(True),
    ),
)


@dataclass
class Api:
    client: TestClient[Any]
    headers: dict[str, str]
    last: int = 0

    def as_(self, app: str | None, surface: str) -> dict[str, str]:
        return {**self.headers, "X-Surface-Id": surface, **({} if app is None else {"X-App-Id": app})}


@contextmanager
def service(tmp: pytest.TempPathFactory) -> Iterator[Api]:
    config = Settings(data_dir=tmp.mktemp("spine"), bootstrap_key=BOOTSTRAP_KEY, sqlite_synchronous="NORMAL")
    with TestClient(create_app(config, clock=Clock(NOW))) as client:
        headers = provision_sync(client)
        admin = admin_headers_sync(client)
        apps = {("app", a) for a in APPS if a} | {("surface", s) for s in SURFACES if s != "web"}
        for what, ident in apps:
            body = {f"{what}_id": ident, "name": ident}
            assert client.post(f"/v1/tenants/t1/{what}s", json=body, headers=admin).status_code == 201
        yield Api(client, headers)


def served(api: Api, aggregation: str) -> dict[tuple[str, str], Any]:
    """Every series the API answers, by (bucket, dimension)."""
    seen = {}
    for bucket, span in SPANS.items():
        for dimension in ("none", "app", "surface", "run"):
            params = {"bucket": bucket, "dimension": dimension, "from": (NOW - span).isoformat(),
                      "to": (NOW + timedelta(minutes=10)).isoformat()}  # fmt: skip
            answer = api.client.get(
                "/v1/kpis/lat/series",
                params=params,
                headers={**api.headers, "X-Spine-Min-Position": str(api.last)},
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["aggregation"], body["bucket"], body["dimension"]) == (
                aggregation,
                bucket,
                dimension,
            )
            seen[bucket, dimension] = body["series"]
    return seen


Accepted = tuple[float, str, int, str | None, str, str | None]  # value, at, order, app, surface, run

_WIDTH = {"minute": 16, "hour": 13, "day": 10}
_PAD = {"minute": ":00Z", "hour": ":00:00Z", "day": "T00:00:00Z"}


def model(accepted: list[Accepted], aggregation: str) -> dict[tuple[str, str], Any]:
    expected: dict[tuple[str, str], Any] = {}
    for bucket in SPANS:
        for dimension in ("none", "app", "surface", "run"):
            groups: dict[str | None, dict[str, list[tuple[str, int, float]]]] = {}
            for value, at, order, app, surface, run in accepted:
                key = {"none": None, "app": app, "surface": surface, "run": run}[dimension]
                if dimension != "none" and key is None:
                    continue
                start = at[: _WIDTH[bucket]] + _PAD[bucket]
                groups.setdefault(key, {}).setdefault(start, []).append((at, order, value))
            expected[bucket, dimension] = [
                {
                    "dimension_value": key,
                    "points": [_point(start, found[start], aggregation) for start in sorted(found)],
                }
                for key, found in sorted(groups.items(), key=lambda item: item[0] or "")
            ]
    return expected


def _point(start: str, found: list[tuple[str, int, float]], aggregation: str) -> dict[str, Any]:
    values = sorted(value for *_, value in found)
    point = {
        "start": start, "count": len(found), "sum": sum(values), "min": values[0], "max": values[-1],
        "last": max(found)[2],
        "p50": values[math.floor(0.5 * (len(values) - 1))], "p95": values[math.floor(0.95 * (len(values) - 1))],
    }  # fmt: skip
    point["value"] = point[aggregation]
    return point


def agree(served_series: Any, model_series: Any, aggregation: str) -> None:
    """Equal, but for the quantiles (and `value` when it is one), within 1% of the model's."""
    close = {"p50", "p95"} | ({"value"} if aggregation in ("p50", "p95") else set())
    assert [s["dimension_value"] for s in served_series] == [s["dimension_value"] for s in model_series]
    for got, want in zip(served_series, model_series, strict=True):
        assert [p["start"] for p in got["points"]] == [p["start"] for p in want["points"]]
        for point, expected in zip(got["points"], want["points"], strict=True):
            for field, value in expected.items():
                if field in close:
                    assert abs(point[field] - value) <= ACCURACY * (1 + 1e-9) * abs(value), (
                        field,
                        point,
                        expected,
                    )
                else:
                    assert point[field] == value, (field, point, expected)


@PROPERTY
@given(
    aggregation=st.sampled_from(("sum", "count", "min", "max", "last", "p50", "p95")),
    commands=st.lists(posts, min_size=1, max_size=15),
)
def test_series_equal_a_model_of_the_raw_values_and_rebuild_the_same(
    tmp_path_factory: pytest.TempPathFactory, aggregation: str, commands: list[Post]
) -> None:
    accepted: list[Accepted] = []
    ids: set[str] = set()
    with service(tmp_path_factory) as api:
        defined = api.client.put(
            "/v1/kpis/lat", json={"unit": "ms", "aggregation": aggregation}, headers=api.headers
        )
        assert defined.status_code == 200, defined.text
        for post in commands:
            if post.batch and len({v.id for v in post.values if v.id}) < len(
                [v for v in post.values if v.id]
            ):
                post = Post(post.app, post.surface, post.values[:1], post.batch)  # ids repeat within: refused
            bodies = [
                {"value": v.value, **({"run_id": v.run_id} if v.run_id else {}), **({"id": v.id} if v.id else {}),
                 **({} if v.default_time else {"at": (NOW + timedelta(seconds=v.offset)).isoformat()})}
                for v in post.values
            ]  # fmt: skip
            body = {"values": bodies} if post.batch else bodies[0]
            answer = api.client.post(
                "/v1/kpis/lat/values", json=body, headers=api.as_(post.app, post.surface)
            )
            assert answer.status_code == 201, answer.text
            api.last = max(api.last, answer.json()["position"])
            for v in post.values:
                if v.id is not None and v.id in ids:
                    continue  # a retry: the value stored first stands
                if v.id is not None:
                    ids.add(v.id)
                at = (NOW + timedelta(seconds=0 if v.default_time else v.offset)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ"
                )
                accepted.append((v.value, at, len(accepted), post.app, post.surface, v.run_id))
        before = served(api, aggregation)
        expected = model(accepted, aggregation)
        for key, series in expected.items():
            agree(before[key], series, aggregation)
        answer = api.client.post(
            "/v1/projections/kpis/rebuild?wait=true", headers=admin_headers_sync(api.client)
        )
        assert answer.status_code == 202, answer.text
        assert [(p["generation"], p["rebuild"]["state"]) for p in answer.json()["projections"]] == [
            (1, "swapped")
        ]
        assert served(api, aggregation) == before

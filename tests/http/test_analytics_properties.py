"""Property test of the analytics view, through the HTTP API only.

A random sequence of events, batches, retries and clock moves goes into a fresh service; the
events and the counts as read back (waiting for the last write with `X-Spine-Min-Position`) must
equal a small model written here, and after a rebuild from position 0 every read answers exactly
as before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.http.test_view_properties import PROPERTY, Api, ok, rebuild, service
from tests.provision import admin_headers_sync

NAMES = ("view", "tap", "buy")
APPS = ("app1", "app2")
SURFACES = ("web", "ios")
RUNS = (None, "r1", "r2")


@dataclass(frozen=True)
class Sent:
    """One event as a client sends it, and where from."""

    name: str
    app: str
    surface: str
    run: str | None
    client_id: str | None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "platform": "web", "properties": {"app": self.app}}
        if self.run is not None:
            body["run_id"] = self.run
        if self.client_id is not None:
            body["id"] = self.client_id
        return body


@dataclass(frozen=True)
class Track:
    event: Sent


@dataclass(frozen=True)
class Batch:
    events: tuple[Sent, ...]  # one app and surface: a batch is one request


@dataclass(frozen=True)
class Retry:
    """Send again the n-th accepted request (modulo how many there were)."""

    n: int


@dataclass(frozen=True)
class Tick:
    hours: int


@dataclass
class Model:
    events: list[dict[str, Any]] = field(default_factory=list)  # in position order
    sent: list[Track | Batch] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


sent_events = st.builds(
    Sent,
    st.sampled_from(NAMES),
    st.just("app1"),
    st.just("web"),
    st.sampled_from(RUNS),
    st.none() | st.sampled_from([f"c{i}" for i in range(4)]),
).map(lambda s: Sent(s.name, s.app, s.surface, s.run, s.client_id and f"{s.name}-{s.client_id}"))
# (an id reused for an event of another name is a client's 409, tested in test_analytics.py)


def from_(app: str, surface: str) -> st.SearchStrategy[Sent]:
    return sent_events.map(lambda s: Sent(s.name, app, surface, s.run, s.client_id))


places = st.tuples(st.sampled_from(APPS), st.sampled_from(SURFACES))
commands = st.one_of(
    places.flatmap(lambda p: from_(*p)).map(Track),
    places.flatmap(lambda p: st.lists(from_(*p), min_size=1, max_size=5)).map(lambda e: Batch(tuple(e))),
    st.integers(0, 20).map(Retry),
    st.sampled_from((1, 7, 13)).map(Tick),
)


def headers(api: Api, app: str, surface: str) -> dict[str, str]:
    return api.headers("u1", **{"X-App-Id": app, "X-Surface-Id": surface})


def accepts(events: tuple[Sent, ...]) -> bool:
    """A batch repeating an id is refused whole (422) before anything is appended."""
    ids = [e.client_id for e in events if e.client_id is not None]
    return len(ids) == len(set(ids))


def send(api: Api, model: Model, command: Track | Batch) -> None:
    events = (command.event,) if isinstance(command, Track) else command.events
    first = events[0]
    sent = headers(api, first.app, first.surface)
    if isinstance(command, Track):
        answer = api.client.post("/v1/analytics/events", json=first.body(), headers=sent)
    else:
        answer = api.client.post(
            "/v1/analytics/events/batch", json={"events": [e.body() for e in events]}, headers=sent
        )
    if not accepts(events):
        assert answer.status_code == 422, answer.text
        return
    api.wrote(answer, 201)
    model.sent.append(command)
    time = api.clock.now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    names = [e.name for e in events]
    grouped = sorted(events, key=lambda e: names.index(e.name))  # one append per name, in batch order
    for event in grouped:
        if event.client_id is not None and event.client_id in model.ids:
            continue  # a retry: answered, never appended
        if event.client_id is not None:
            model.ids.add(event.client_id)
        model.events.append(
            {
                "name": event.name,
                "run_id": event.run,
                "client_id": event.client_id,
                "app": event.app,
                "surface": event.surface,
                "time": time,
            }
        )


def served(api: Api) -> dict[str, Any]:
    wait = {"X-Spine-Min-Position": str(api.last["p1"])} if "p1" in api.last else {}
    reader = {**headers(api, "app1", "web"), **wait}
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        "all": ("/v1/analytics/events", {}),
        **{f"name={n}": ("/v1/analytics/events", {"name": n}) for n in NAMES},
        **{f"run={r}": ("/v1/analytics/events", {"run_id": r}) for r in RUNS if r},
        "run=r1,name=tap": ("/v1/analytics/events", {"run_id": "r1", "name": "tap"}),
        **{f"app={a}": ("/v1/analytics/events", {"app_id": a}) for a in APPS},
        "surface=ios": ("/v1/analytics/events", {"surface_id": "ios"}),
        "counts": ("/v1/analytics/counts", {}),
    }
    return {
        name: ok(api.client.get(path, params={"limit": 1000, **params}, headers=reader))
        for name, (path, params) in queries.items()
    }


def seen(record: dict[str, Any]) -> dict[str, Any]:
    a = record["attribution"]
    return {
        "name": record["name"],
        "run_id": record["run_id"],
        "client_id": record["client_id"],
        "app": a["app_id"],
        "surface": a["surface_id"],
        "time": record["time"],
    }


def as_model(view: dict[str, Any]) -> dict[str, Any]:
    return {
        name: page["counts"] if name == "counts" else [seen(r) for r in page["events"]]
        for name, page in view.items()
    }


def expected(model: Model) -> dict[str, Any]:
    events = model.events
    per_day = Counter((e["time"][:10], e["name"]) for e in events)
    return {
        "all": events,
        **{f"name={n}": [e for e in events if e["name"] == n] for n in NAMES},
        **{f"run={r}": [e for e in events if e["run_id"] == r] for r in RUNS if r},
        "run=r1,name=tap": [e for e in events if e["run_id"] == "r1" and e["name"] == "tap"],
        **{f"app={a}": [e for e in events if e["app"] == a] for a in APPS},
        "surface=ios": [e for e in events if e["surface"] == "ios"],
        "counts": [{"name": n, "day": d, "count": c} for (d, n), c in sorted(per_day.items())],
    }


@PROPERTY
@given(commands=st.lists(commands, min_size=3, max_size=20))
def test_analytics_records_every_event_once_counts_per_day_and_rebuilds_the_same(
    tmp_path_factory: pytest.TempPathFactory, commands: list[Any]
) -> None:
    model = Model()
    with service(tmp_path_factory, {"u1": "member"}) as api:
        admin = admin_headers_sync(api.client)
        assert api.client.post(
            "/v1/tenants/t1/apps", json={"app_id": "app2", "name": "a"}, headers=admin
        ).is_success
        assert api.client.post(
            "/v1/tenants/t1/surfaces", json={"surface_id": "ios", "name": "i"}, headers=admin
        ).is_success
        for command in commands:
            match command:
                case Track() | Batch():
                    send(api, model, command)
                case Retry(n) if model.sent:
                    send(api, model, model.sent[n % len(model.sent)])
                case Tick(hours):
                    api.clock.now += timedelta(hours=hours)
        view = served(api)
        assert all(page["next"] is None for page in view.values())
        assert as_model(view) == expected(model)
        if model.events:
            assert rebuild(api, "analytics") == [("p1", 1, "swapped")]
        assert served(api) == view

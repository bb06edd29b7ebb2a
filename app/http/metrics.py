"""Prometheus metrics, in a registry of the app's own (several apps may live in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `_created` series double every counter's output and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.appended_events = Counter("spine_appended_events", "Events durably appended", registry=r)
        self.appends = Counter("spine_appends", "Append requests by outcome", ["outcome"], registry=r)
        self.append_seconds = Histogram(
            "spine_append_seconds", "Append latency until durable", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.commit_requests = Histogram(
            "spine_commit_batch_requests",
            "Appends coalesced into one commit",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.commit_events = Histogram(
            "spine_commit_batch_events", "Events written by one commit", buckets=_BATCH_BUCKETS, registry=r
        )
        self.commit_seconds = Histogram(
            "spine_commit_seconds", "Group-commit transaction time", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.sse_clients = Gauge("spine_sse_clients", "Connected SSE followers", registry=r)
        self.sse_events = Counter("spine_sse_events_sent", "Events sent to SSE followers", registry=r)
        self.sse_readers = Gauge("spine_sse_readers", "Partitions with a shared SSE reader", registry=r)
        self.sse_cut = Counter(
            "spine_sse_followers_cut", "SSE followers ended for falling behind (they resume)", registry=r
        )
        self.http_seconds = Histogram(
            "spine_http_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        self.projection_delay = Histogram(
            "spine_projection_delay_seconds",
            "From an event's append to its view batch being written",
            ["projection"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._lag_source: Callable[[], Iterable[tuple[str, int]]] = tuple
        r.register(_LagCollector(lambda: self._lag_source()))

    def watch_projections(self, source: Callable[[], Iterable[tuple[str, int]]]) -> None:
        """Where scrapes read each runner's (projection, events behind the head it last saw)."""
        self._lag_source = source

    def projection_batch(self, projection: str, last_recorded_at: datetime) -> None:
        delay = (datetime.now(UTC) - last_recorded_at).total_seconds()
        self.projection_delay.labels(projection).observe(max(delay, 0.0))

    def on_commit(self, requests: int, events: int, seconds: float) -> None:
        self.commit_requests.observe(requests)
        self.commit_events.observe(events)
        self.commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LagCollector(Collector):
    def __init__(self, source: Callable[[], Iterable[tuple[str, int]]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        lag: dict[str, int] = {}
        views: dict[str, int] = {}
        for projection, behind in self._source():
            lag[projection] = lag.get(projection, 0) + behind
            views[projection] = views.get(projection, 0) + 1
        behind_family = GaugeMetricFamily(
            "spine_projection_lag_events",
            "Events a view is behind its partition, summed",
            labels=["projection"],
        )
        running = GaugeMetricFamily(
            "spine_projection_runners", "Partitions each projection runs for", labels=["projection"]
        )
        for projection in sorted(lag):
            behind_family.add_metric([projection], lag[projection])
            running.add_metric([projection], views[projection])
        yield behind_family
        yield running

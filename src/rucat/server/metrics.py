"""Prometheus metrics of one server: requests and latencies per route, engines per state.

Each app owns its registry, so several apps in one process (tests, `rucat up`)
never collide. Routes are labelled by their template (``/engine/{engine_id}``),
never the raw path, so label cardinality stays bounded. The engines-per-state
gauge is computed at scrape time from the store, not tracked incrementally:
monitors in other processes change states too.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rucat.domain.state import EngineState

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rucat_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rucat_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.engines = Gauge(
            "rucat_engines",
            "Engines in the store, by state (computed at scrape time).",
            ["state"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "rucat_store_up",
            "1 if the store answered the last scrape, else 0 (engine counts are then absent).",
            registry=self.registry,
        )

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, states: Iterable[EngineState] | None) -> bytes:
        """The exposition text, with the engine gauge set from `states` (one per engine).

        None means the store did not answer: the engine counts are dropped rather
        than left stale, and rucat_store_up says why.
        """
        if states is None:
            self.engines.clear()
            self.store_up.set(0)
        else:
            counts = Tally(states)
            for state in EngineState:
                self.engines.labels(state.value).set(counts.get(state, 0))
            self.store_up.set(1)
        return generate_latest(self.registry)

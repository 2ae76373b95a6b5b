"""Prometheus metrics of one server: requests and latencies per route, engines per state.

Each app owns its registry, so several apps in one process (tests, `rucat up`)
never collide. Routes are labelled by their template (``/engine/{engine_id}``),
never the raw path, so label cardinality stays bounded. The engines-per-state
gauge and the busy/idle gauges of Running engines are computed at scrape time
from the store, not tracked incrementally: monitors in other processes change
states too, and busy-ness is what every proxy refreshes there.

Auto-starts and auto-stops are counters of the process that does them: the
proxy's auto-starts (each server counts its own; sum them), and the auto-stops
of a monitor in the same process (`rucat up`). A separate `rucat monitor`
serves its auto-stops on its own `monitor_metrics_port`. Counters in the
process that acts stay monotonic, which counts derived from the store's
events would not be (deleting an engine deletes its events).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from rucat.domain.activity import is_busy
from rucat.domain.engine import Engine
from rucat.domain.state import EngineState

__all__ = ["AUTO_STARTS", "AUTO_STOPS", "CONTENT_TYPE_LATEST", "Metrics", "count_in"]

AUTO_STARTS = "rucat_engine_auto_starts"
AUTO_STOPS = "rucat_engine_auto_stops"
POOL_HAND_OUTS = "rucat_pool_hand_outs"
POOL_MISSES = "rucat_pool_misses"


class _Counted(Collector):
    """A counter whose value another object keeps (the proxy's, the monitor's)."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())


def count_in(registry: CollectorRegistry, name: str, read: Callable[[], int]) -> None:
    """Register counter `name` (auto-starts or auto-stops) read from `read()`."""
    what = {
        AUTO_STARTS: "Terminated engines started again by a Spark Connect call (this process).",
        AUTO_STOPS: "Running engines stopped for no Spark Connect activity (this process).",
    }[name]
    registry.register(_Counted(name, what, read))


class PoolCounts:
    """Warm pools' hand-outs and misses (matching creates started cold) per pool name,
    since this server started (monotonic); server/pools.py counts them."""

    def __init__(self) -> None:
        self.hand_outs: collections.Counter[str] = collections.Counter()
        self.misses: collections.Counter[str] = collections.Counter()


class _PoolCounters(Collector):
    def __init__(self, counts: PoolCounts, names: Callable[[], Iterable[str]]) -> None:
        self._counts = counts
        self._names = names

    def collect(self) -> Iterator[CounterMetricFamily]:
        names = sorted(self._names())
        for metric, what, counted in (
            (POOL_HAND_OUTS, "Idle pool engines handed to a create (this process).", "hand_outs"),
            (
                POOL_MISSES,
                "Creates matching a pool that found it empty and started cold.",
                "misses",
            ),
        ):
            family = CounterMetricFamily(metric, what, labels=["pool"])
            values: collections.Counter[str] = getattr(self._counts, counted)
            for name in names:
                family.add_metric([name], values[name])
            yield family


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(
        self,
        *,
        busy_grace: float = 10.0,
        auto_starts: Callable[[], int] | None = None,
        auto_stops: Callable[[], int] | None = None,
        pools: PoolCounts | None = None,
        pool_names: Sequence[str] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._busy_grace = busy_grace
        self._pool_names = tuple(pool_names)
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
        self.running = Gauge(
            "rucat_running_engines",
            "Running engines by activity: busy (a Spark Connect RPC in flight or just "
            "finished) or idle (computed at scrape time).",
            ["activity"],
            registry=self.registry,
        )
        if auto_starts is not None:
            count_in(self.registry, AUTO_STARTS, auto_starts)
        if auto_stops is not None:
            count_in(self.registry, AUTO_STOPS, auto_stops)
        self.pool_idle = Gauge(
            "rucat_pool_idle_engines",
            "Running engines waiting idle in each warm pool (computed at scrape time).",
            ["pool"],
            registry=self.registry,
        )
        if pools is not None:
            self.registry.register(_PoolCounters(pools, lambda: self._pool_names))
        self.store_up = Gauge(
            "rucat_store_up",
            "1 if the store answered the last scrape, else 0 (engine counts are then absent).",
            registry=self.registry,
        )

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(
        self,
        engines: tuple[Mapping[EngineState, int], Iterable[Engine]] | None,
        *,
        now: datetime,
    ) -> bytes:
        """The exposition text, with the engine gauges set from `engines`: the store's
        count per state, and the Running engines (for busy and idle).

        None means the store did not answer: the engine counts are dropped rather
        than left stale, and rucat_store_up says why.
        """
        if engines is None:
            self.engines.clear()
            self.running.clear()
            self.pool_idle.clear()
            self.store_up.set(0)
        else:
            counts, listed = engines
            for state in EngineState:
                self.engines.labels(state.value).set(counts.get(state, 0))
            running = [e for e in listed if e.state is EngineState.Running]
            busy = sum(is_busy(e, now=now, busy_grace=self._busy_grace) for e in running)
            self.running.labels("busy").set(busy)
            self.running.labels("idle").set(len(running) - busy)
            pooled = collections.Counter(e.pool for e in running if e.pool is not None)
            for name in self._pool_names:
                self.pool_idle.labels(name).set(pooled[name])
            self.store_up.set(1)
        return generate_latest(self.registry)

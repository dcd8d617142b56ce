"""Prometheus metrics of the gateway: receivers of :mod:`workers.signals`, served at ``GET /metrics``.

Counters and histograms are fed by the telemetry events; gauges that describe shared state
(registered functions, live workers, breakers) are read when Prometheus scrapes, from the
registry snapshot and Redis, so every gateway process reports the same value.

Under ``genapi gateway`` several gunicorn worker processes serve one port, and a scrape
reaches one of them: ``genapi gateway`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh
directory before the workers start, so each process writes its values there and a scrape
sums them (prometheus_client's multiprocess mode). An app that embeds the gateway in one
process needs nothing.

The request counter and the duration histogram are updated a moment after the request
ends (:mod:`workers.deferred`, at most 0.2 s later), off the request's path.

Labels never carry a user, a device or a request id; a request refused before its
function was known (bad frame, unknown function, no identity) is counted with empty
``service`` and ``request_type`` labels, so a client cannot mint new series.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from workers import signals
from workers.deferred import later

from . import breakers as breakers_module

if TYPE_CHECKING:
    from .extension import Gateway

log = logging.getLogger("genapi.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: outcomes of requests refused before their function was resolved: their names came from the client
UNRESOLVED = frozenset({"auth_required", "invalid_request", "unsupported_function"})

#: seconds; a sync call through the gateway takes about a millisecond on a quiet machine
DURATION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_BREAKER_STATES = {"closed": 0, "open": 1, "half_open": 2}


class Metrics:
    """The gateway's metric objects and the signal receivers that update them."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry
        #: (service, request_type, mode, outcome) → (counter, histogram) children; bounded by
        #: the registered functions (unresolved names all map to the empty labels)
        self._series: dict[tuple, tuple] = {}
        kwargs = {"registry": registry}
        self.connections = Gauge("genapi_connections", "Open WebSocket connections.",
                                 multiprocess_mode="livesum", **kwargs)
        self.requests = Counter("genapi_requests_total", "Requests answered, by function, mode and outcome.",
                                ["service", "request_type", "mode", "outcome"], **kwargs)
        self.duration = Histogram("genapi_request_duration_seconds",
                                  "Time from a request's frame to its terminal frame.",
                                  ["service", "request_type", "mode"], buckets=DURATION_BUCKETS, **kwargs)
        self.rate_limited = Counter("genapi_rate_limited_total", "Requests refused by a rate limit.",
                                    ["service", "request_type", "scope"], **kwargs)
        self.retries = Counter("genapi_retries_total", "Calls re-dispatched after a failed attempt.",
                               ["service", "request_type"], **kwargs)
        self.breaker_rejected = Counter("genapi_breaker_rejected_total", "Calls refused by an open breaker.",
                                        ["pool"], **kwargs)
        self.breaker_transitions = Counter("genapi_breaker_transitions_total", "Breakers changing state.",
                                           ["scope", "state"], **kwargs)
        self.stream_chunks = Counter("genapi_stream_chunks_total", "Stream chunks sent to clients.",
                                     ["service", "request_type"], **kwargs)
        self.relay_frames = Counter("genapi_relay_frames_delivered_total",
                                    "Relay frames written to members' connections.", **kwargs)
        self.relay_fanout = Histogram("genapi_relay_fanout_seconds",
                                      "Time one gateway process takes to hand a relay frame to its members.",
                                      buckets=DURATION_BUCKETS, **kwargs)
        self.hook_failures = Counter("genapi_hook_failures_total", "Hooks that raised or timed out.",
                                     ["type", "kind"], **kwargs)

    # ------------------------------------------------------------------ receivers

    def connect(self) -> None:
        """Subscribe to the events (strong references: these receivers live as long as the process)."""
        for sig, receiver in self._receivers():
            sig.connect(receiver, weak=False)

    def disconnect(self) -> None:
        for sig, receiver in self._receivers():
            sig.disconnect(receiver)

    def _receivers(self):
        return [
            (signals.connection_open, self._opened), (signals.connection_close, self._closed),
            (signals.executor_request_stop, self._answered), (signals.executor_request_exception, self._crashed),
            (signals.rate_limiter_exceeded, self._limited), (signals.executor_retry, self._retried),
            (signals.worker_pool_task_rejected, self._refused), (signals.breaker_state_change, self._breaker),
            (signals.stream_chunks, self._chunks), (signals.relay_delivered, self._relayed),
            (signals.hook_before_exception, self._hook_failed), (signals.hook_after_exception, self._hook_failed),
        ]

    def _opened(self, sender, **fields) -> None:
        self.connections.inc()

    def _closed(self, sender, **fields) -> None:
        self.connections.dec()

    def _answered(self, sender, *, service, request_type, mode, outcome, duration, **fields) -> None:
        # counted a moment later, off the request's path (a scrape first runs what is queued)
        later.put(self._count, (service, request_type, mode, outcome, duration))

    def _count(self, answer: tuple) -> None:
        service, request_type, mode, outcome, duration = answer
        if outcome in UNRESOLVED:  # names a client made up: never a series (nor a cache entry) of their own
            service = request_type = mode = None
        key = (service, request_type, mode, outcome)
        series = self._series.get(key)
        if series is None:  # labels() costs more than the update itself: look each series up once
            labels = (service or "", request_type or "", mode or "")
            series = self._series[key] = (self.requests.labels(*labels, outcome), self.duration.labels(*labels))
        series[0].inc()
        series[1].observe(duration)

    def _crashed(self, sender, *, service, request_type, mode, duration, outcome, **fields) -> None:
        self._answered(sender, service=service, request_type=request_type, mode=mode, outcome=outcome,
                       duration=duration)

    def _limited(self, sender, *, service, request_type, scope, **fields) -> None:
        self.rate_limited.labels(service or "", request_type or "", scope).inc()

    def _retried(self, sender, *, service, request_type, **fields) -> None:
        self.retries.labels(service, request_type).inc()

    def _refused(self, sender, *, pool_name, **fields) -> None:
        self.breaker_rejected.labels(pool_name).inc()

    def _breaker(self, sender, *, scope, state, **fields) -> None:
        self.breaker_transitions.labels(scope, state).inc()

    def _chunks(self, sender, *, count, service, request_type, **fields) -> None:
        self.stream_chunks.labels(service, request_type).inc(count)

    def _relayed(self, sender, *, recipients, duration, **fields) -> None:
        self.relay_frames.inc(recipients)
        self.relay_fanout.observe(duration)

    def _hook_failed(self, sender, *, type, kind, **fields) -> None:  # noqa: A002 - the event's field name
        self.hook_failures.labels(type, kind).inc()


class SharedState:
    """Gauges read at scrape time from what every gateway process shares."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def describe(self):
        return []  # no fixed description: collected on demand only

    def collect(self):
        snapshot = self.gateway.cache.snapshot
        functions = GaugeMetricFamily("genapi_registered_functions", "Functions in the registry, by service.",
                                      labels=["service"])
        by_service: dict[str, int] = {}
        for config in snapshot.all_configs():
            by_service[config.service] = by_service.get(config.service, 0) + 1
        for service, count in sorted(by_service.items()):
            functions.add_metric([service], count)
        yield functions
        workers = GaugeMetricFamily("genapi_live_workers", "Workers with a live heartbeat.")
        workers.add_metric([], len(snapshot.live_nodes(lambda node: True)))
        yield workers
        yield from self._breakers()

    def _breakers(self):
        family = GaugeMetricFamily("genapi_breaker_state", "Breakers with state: 0 closed, 1 open, 2 half open.",
                                   labels=["breaker", "scope", "service"])
        if self.gateway.breakers is not None:
            try:
                states = self.gateway.breakers.states()
            except redis.RedisError as exc:
                log.warning("metrics: could not read the breakers: %s", exc)
                states = {}
            for entry in breakers_module.describe(states):
                family.add_metric([entry["name"], entry["scope"], entry["service"]], _BREAKER_STATES[entry["state"]])
        yield family


_metrics: Metrics | None = None


def install() -> Metrics:
    """The process's metrics, created and subscribed once (gateways in one process share them)."""
    global _metrics
    if _metrics is None:
        # multiprocess mode writes values to files (no registry); one process alone keeps its own
        _metrics = Metrics(None if multiprocess_dir() else CollectorRegistry())
        _metrics.connect()
    return _metrics


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _Collected:
    """Several collectors read as one registry."""

    def __init__(self, *parts) -> None:
        self.parts = parts

    def collect(self):
        for part in self.parts:
            yield from part.collect()


def render(gateway: Gateway) -> tuple[bytes, str]:
    """The exposition text of every metric: this process's (or all processes') values and
    the shared-state gauges."""
    metrics = install()
    later.flush()  # this process's counts are current; other processes' are at most one interval old
    values = multiprocess.MultiProcessCollector(None) if multiprocess_dir() else metrics.registry
    return generate_latest(_Collected(values, SharedState(gateway))), CONTENT_TYPE_LATEST


def process_exited(pid: int) -> None:
    """A gunicorn worker process ended: its live gauges stop counting (multiprocess mode)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)

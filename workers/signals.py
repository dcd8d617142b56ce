"""Every telemetry event CeleryGenApi emits, declared in one place (blinker signals).

The names are those of the original's ``PhoenixGenApi.Telemetry`` (reference §12) joined
with dots, plus events the original lacks (connections, streams, relay delivery, breaker
state changes, workers joining and leaving). Subscribe with blinker's API::

    from workers import signals

    @signals.executor_request_stop.connect
    def count(sender, **fields):
        print(fields["service"], fields["request_type"], fields["duration"])

Every receiver gets the fields listed in :data:`EVENTS` as keyword arguments. Durations
are in **seconds** (floats), ``system_time`` is ``time.time_ns()``. The sender is the
component that emitted the event (the gateway extension, a worker's task, …) or ``None``.

Code paths emit through :func:`emit`, which costs one attribute check when nobody listens:
metrics (:mod:`gateway_app.metrics`) and logs are receivers like any other.
A receiver that raises is logged and skipped; it never breaks a call.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

log = logging.getLogger("genapi.signals")

_signals = Namespace()

_REQUEST = ("request_id", "service", "request_type", "version", "user_id", "mode")

#: every event name → the fields its receivers get, in the order of reference §12
EVENTS: dict[str, tuple[str, ...]] = {
    # executor (5): one request through the gateway
    "executor.request.start": ("system_time", *_REQUEST),
    "executor.request.stop": ("duration", *_REQUEST, "success", "async", "outcome", "error", "node"),
    "executor.request.exception": ("duration", *_REQUEST, "kind", "reason", "stacktrace", "outcome", "node"),
    "executor.retry": ("attempt", "backoff", "request_id", "service", "request_type", "mode", "type", "nodes"),
    "executor.retry.exhausted": ("request_id", "service", "request_type", "mode", "last_error"),
    # rate limiter (4)
    "rate_limiter.check": ("duration", "request_id", "user_id", "instance", "service", "request_type", "result"),
    "rate_limiter.exceeded": ("retry_after", "key", "scope", "max_requests", "current_requests", "request_id",
                              "user_id", "service", "request_type"),
    "rate_limiter.reset": ("key", "scope", "rate_limit_key"),
    "rate_limiter.cleanup": ("duration", "cleaned_entries", "global_limits_count", "api_limits_count"),
    # hooks (6): a function's hooks on the worker, the gateway's own hooks on the gateway
    "hook.before.start": ("system_time", "module", "function", "type"),
    "hook.before.stop": ("duration", "module", "function", "type"),
    "hook.before.exception": ("duration", "module", "function", "type", "kind", "reason", "stacktrace"),
    "hook.after.start": ("system_time", "module", "function", "type"),
    "hook.after.stop": ("duration", "module", "function", "type"),
    "hook.after.exception": ("duration", "module", "function", "type", "kind", "reason", "stacktrace"),
    # worker pool (6), in Celery terms: a task on a worker; the breakers in front of them
    "worker_pool.task.start": ("system_time", "pool_name", "task", "task_id", "request_id", "mode"),
    "worker_pool.task.stop": ("duration", "pool_name", "task", "task_id", "request_id", "mode", "outcome"),
    "worker_pool.task.exception": ("duration", "pool_name", "task", "task_id", "request_id", "mode", "kind",
                                   "reason", "stacktrace"),
    "worker_pool.task.rejected": ("system_time", "pool_name", "reason", "request_id", "service", "request_type"),
    "worker_pool.circuit_breaker.open": ("pool_name", "consecutive_failures"),
    "worker_pool.circuit_breaker.close": ("pool_name",),
    # config (9): the function registry
    "config.pull.start": ("system_time", "service"),
    "config.pull.stop": ("duration", "count", "service", "version"),
    "config.push": ("count", "service", "version"),
    "config.add": ("service", "request_type", "version"),
    "config.batch_add": ("count", "service"),
    "config.delete": ("service", "request_type", "version"),
    "config.clear": ("service", "request_type", "version"),
    "config.disable": ("service", "request_type", "version"),
    "config.enable": ("service", "request_type", "version"),
    # ours
    "connection.open": ("system_time", "connection_id", "user_id", "public"),
    "connection.close": ("duration", "connection_id", "user_id", "public", "requests"),
    "stream.chunks": ("count", "request_id", "service", "request_type"),
    "relay.delivered": ("group_id", "recipients", "duration"),
    "breaker.state_change": ("name", "scope", "state", "previous"),
    "worker.joined": ("node_id", "services"),
    "worker.left": ("node_id", "services"),
}

#: the events of the original's list (reference §12: 30 events in 5 categories)
ORIGINAL_EVENTS: tuple[str, ...] = tuple(name for name in EVENTS if name.split(".")[0] in
                                         ("executor", "rate_limiter", "hook", "worker_pool", "config"))

#: events declared for compatibility that nothing here emits, and why
NOT_EMITTED: dict[str, str] = {
    "rate_limiter.cleanup": "rate-limit windows live in Redis and expire by TTL; there is no sweep to report",
    "config.clear": "nothing empties the whole registry at once; config.delete fires per function removed",
}


def _declare(name: str) -> NamedSignal:
    return _signals.signal(name, doc=f"fields: {', '.join(EVENTS[name])}")


executor_request_start = _declare("executor.request.start")
executor_request_stop = _declare("executor.request.stop")
executor_request_exception = _declare("executor.request.exception")
executor_retry = _declare("executor.retry")
executor_retry_exhausted = _declare("executor.retry.exhausted")

rate_limiter_check = _declare("rate_limiter.check")
rate_limiter_exceeded = _declare("rate_limiter.exceeded")
rate_limiter_reset = _declare("rate_limiter.reset")
rate_limiter_cleanup = _declare("rate_limiter.cleanup")

hook_before_start = _declare("hook.before.start")
hook_before_stop = _declare("hook.before.stop")
hook_before_exception = _declare("hook.before.exception")
hook_after_start = _declare("hook.after.start")
hook_after_stop = _declare("hook.after.stop")
hook_after_exception = _declare("hook.after.exception")

worker_pool_task_start = _declare("worker_pool.task.start")
worker_pool_task_stop = _declare("worker_pool.task.stop")
worker_pool_task_exception = _declare("worker_pool.task.exception")
worker_pool_task_rejected = _declare("worker_pool.task.rejected")
worker_pool_circuit_breaker_open = _declare("worker_pool.circuit_breaker.open")
worker_pool_circuit_breaker_close = _declare("worker_pool.circuit_breaker.close")

config_pull_start = _declare("config.pull.start")
config_pull_stop = _declare("config.pull.stop")
config_push = _declare("config.push")
config_add = _declare("config.add")
config_batch_add = _declare("config.batch_add")
config_delete = _declare("config.delete")
config_clear = _declare("config.clear")
config_disable = _declare("config.disable")
config_enable = _declare("config.enable")

connection_open = _declare("connection.open")
connection_close = _declare("connection.close")
stream_chunks = _declare("stream.chunks")
relay_delivered = _declare("relay.delivered")
breaker_state_change = _declare("breaker.state_change")
worker_joined = _declare("worker.joined")
worker_left = _declare("worker.left")

HOOK_EVENTS = {
    ("before", "start"): hook_before_start, ("before", "stop"): hook_before_stop,
    ("before", "exception"): hook_before_exception, ("after", "start"): hook_after_start,
    ("after", "stop"): hook_after_stop, ("after", "exception"): hook_after_exception,
}


def signal(name: str) -> NamedSignal:
    """The signal of event ``name`` (``KeyError`` for a name not in :data:`EVENTS`)."""
    if name not in EVENTS:
        raise KeyError(f"no telemetry event {name!r}; see workers.signals.EVENTS")
    return _signals[name]


def emit(sig: NamedSignal, sender: Any = None, **fields: Any) -> None:
    """Send ``fields`` to the event's receivers, if it has any. A receiver that raises is
    logged; the code path that emitted carries on."""
    if not sig.receivers:
        return
    for receiver in sig.receivers_for(sender):
        try:
            receiver(sender, **fields)
        except Exception:
            log.exception("receiver %r of %s failed", receiver, sig.name)


def listening(sig: NamedSignal) -> bool:
    """Has the event any receiver? (Skip building costly fields when it has none.)"""
    return bool(sig.receivers)


def connect_all(receiver, names: list[str] | None = None) -> list[tuple[NamedSignal, Any]]:
    """Connect ``receiver(sender, event=name, **fields)`` to every event (or to ``names``):
    the original's ``attach_all``. Keep what it returns for :func:`disconnect_all`."""
    connected = []
    for name in names or list(EVENTS):
        sig = signal(name)

        def forward(sender, _name=name, **fields):
            receiver(sender, event=_name, **fields)

        sig.connect(forward, weak=False)
        connected.append((sig, forward))
    return connected


def disconnect_all(connected: list[tuple[NamedSignal, Any]]) -> None:
    """Undo :func:`connect_all`."""
    for sig, forward in connected:
        sig.disconnect(forward)


_loaded: dict[str, list] = {}


def load_receivers(paths: tuple[str, ...] | list[str]) -> None:
    """Connect each ``module:function`` receiver to every event (``GENAPI_TELEMETRY_RECEIVERS``);
    loading the same one twice in a process connects it once."""
    from .hooks import load  # hooks emit events themselves: import on use

    for path in paths:
        if path not in _loaded:
            _loaded[path] = connect_all(load(path))

"""gunicorn settings for ``genapi gateway`` (loaded with ``-c python:gateway_app.gunicorn_hooks``).

Each worker process starts the gateway's background threads as soon as it boots.

On SIGTERM gunicorn stops accepting connections and waits ``graceful_timeout`` for open
ones to finish; WebSockets never finish by themselves. This hook makes the gateway drain
instead: calls in flight get their answer (or ``Service temporarily unavailable`` if the
worker is too slow), then every socket is closed with 1001 "going away".
"""

from __future__ import annotations

import glob
import os
import shutil
import signal

import gevent

worker_class = "gevent"
graceful_timeout = 5
#: how long the drain waits for replies still in flight, inside graceful_timeout
drain_seconds = 3.0


def post_worker_init(worker) -> None:
    gateway = worker.wsgi.extensions.get("genapi") if hasattr(worker.wsgi, "extensions") else None
    if gateway is None:
        return
    # start the background work (registry, pushes, pull mode, retention) now, not with the
    # first client: a gateway nobody has called yet still registers workers' functions
    gevent.spawn(gateway.start)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        if callable(previous):
            previous(signum, frame)  # gunicorn: stop accepting, then wait for handlers
        # a signal handler must not block (under gevent it runs in the hub): drain in a greenlet
        gevent.spawn(gateway.drain, drain_seconds)

    signal.signal(signal.SIGTERM, on_term)


def on_starting(server) -> None:
    """Metrics: stale value files of an earlier run would be summed into this one's."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)


def child_exit(server, worker) -> None:
    """A worker process ended: its connections gauge must stop counting."""
    from gateway_app import metrics

    metrics.process_exited(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics directory ``genapi gateway`` made for this run (not one an operator chose)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and os.environ.get("GENAPI_METRICS_DIR_OWNED") == directory:
        shutil.rmtree(directory, ignore_errors=True)

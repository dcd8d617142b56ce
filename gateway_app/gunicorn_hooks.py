"""gunicorn settings for ``genapi gateway`` (loaded with ``-c python:gateway_app.gunicorn_hooks``).

Each worker process starts the gateway's background threads as soon as it boots.

On SIGTERM gunicorn stops accepting connections and waits ``graceful_timeout`` for open
ones to finish; WebSockets never finish by themselves. This hook makes the gateway drain
instead: calls in flight get their answer (or ``Service temporarily unavailable`` if the
worker is too slow), then every socket is closed with 1001 "going away".
"""

from __future__ import annotations

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

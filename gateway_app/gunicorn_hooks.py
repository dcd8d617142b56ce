"""gunicorn settings for ``genapi gateway`` (loaded with ``-c python:gateway_app.gunicorn_hooks``).

Each worker process starts the gateway's background threads as soon as it boots.

As it starts, the gateway raises its open-files soft limit to the hard limit (one file per
WebSocket: the common soft limit of 1024 would refuse the thousandth client), and its gevent
workers stop recording each greenlet's spawning tree (about 2 KB per WebSocket; set
``GEVENT_TRACK_GREENLET_TREE=1`` to keep it for debugging).

On SIGTERM gunicorn stops accepting connections and waits ``graceful_timeout`` for open
ones to finish; WebSockets never finish by themselves. This hook makes the gateway drain
instead: calls in flight get their answer (or ``Service temporarily unavailable`` if the
worker is too slow), then every socket is closed with 1001 "going away".
"""

from __future__ import annotations

import glob
import os
import resource
import shutil
import signal

import gevent

worker_class = "gevent"
graceful_timeout = 5
#: how long the drain waits for replies still in flight, inside graceful_timeout
drain_seconds = 3.0


def post_worker_init(worker) -> None:
    if "GEVENT_TRACK_GREENLET_TREE" not in os.environ:
        gevent.config.track_greenlet_tree = False
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


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's open-files soft limit to its hard limit (the workers forked
    afterwards inherit it); returns (soft before, soft now). ``OSError`` if it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except ValueError as exc:  # e.g. an unlimited hard limit, which the kernel refuses as a soft one
            raise OSError(str(exc)) from exc
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def on_starting(server) -> None:
    """Open files: as many as the hard limit allows (logged when raised). Metrics: stale
    value files of an earlier run would be summed into this one's."""
    try:
        before, now = raise_open_files_limit()
        if now != before:
            server.log.info("open files: soft limit raised from %s to %s (the hard limit)", before, now)
    except OSError as exc:
        server.log.warning("open files: could not raise the soft limit to the hard limit: %s", exc)
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

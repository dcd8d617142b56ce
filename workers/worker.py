"""Start a Celery worker that serves every GenApi service of some modules.

On ``worker_ready`` the worker registers its FunConfigs and itself (node id = the Celery
hostname) in Redis and starts a heartbeat thread; on warm shutdown it leaves the registry
at once. A killed worker simply stops heartbeating and expires after ``GENAPI_NODE_TTL_MS``.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time

import redis
from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from celery.worker.request import Request

from . import logs, pushconfig, signals, tracing
from .celery_app import create_celery_app
from .errors import FunConfigError
from .genapi import Function, GenApi
from .protocol import Keys, service_queue
from .registry import Registry
from .runtime import Replier, make_describe_task, make_task
from .settings import Settings

log = logging.getLogger("genapi.worker")


def load_services(module_names: list[str]) -> list[GenApi]:
    """Import the modules and return the GenApi services they define (at least one)."""
    for name in module_names:
        try:
            importlib.import_module(name)
        except FunConfigError as exc:
            raise SystemExit(f"genapi worker: {exc}") from None
        except ImportError as exc:
            if getattr(exc, "name", None) and name.startswith(exc.name):
                raise SystemExit(f"genapi worker: cannot import {name!r}: {exc}") from None
            raise  # the module exists but one of its own imports failed: show the traceback
    services = [api for api in GenApi.instances() if len(api)]
    if not services:
        raise SystemExit(f"genapi worker: no GenApi functions found in {', '.join(module_names)}")
    return services


def all_functions(services: list[GenApi]) -> list[Function]:
    return [function for api in services for function in api]


class Presence:
    """Registration and heartbeat of one worker node.

    On start it pushes one PushConfig per service (signed with ``GENAPI_PUSH_TOKEN`` when
    set) and joins the live nodes; the heartbeat thread then keeps the node alive, retries
    what failed while Redis was away, and logs what the gateways answered to the pushes.
    """

    #: how long the worker watches for the gateways' answer to its pushes (seconds)
    OUTCOME_WAIT = 60.0

    def __init__(self, registry: Registry, services: list[GenApi], settings: Settings) -> None:
        self.registry = registry
        self.services = services
        self.configs = [c for api in services for c in api.configs()]
        self.settings = settings
        self.node_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leave_lock = threading.Lock()
        self._left = False
        self._gone = threading.Event()
        self._awaiting: dict[str, str] = {}  # push id -> service
        self._awaiting_until = 0.0

    def start(self, node_id: str) -> None:
        self.node_id = node_id
        registered = self._register()
        self._thread = threading.Thread(target=self._beat, args=(registered,), name="genapi-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _register(self) -> bool:
        try:
            for api in self.services:
                if api.push:
                    data = pushconfig.build(api.service, self.node_id, api.configs(), api.config_version,
                                            self.settings.push_token)
                    self.registry.push(data)
                    self._awaiting[data["push_id"]] = api.service
            self.registry.join(self.node_id, self.configs, self.settings.node_ttl)
        except redis.RedisError as exc:
            log.warning("registration failed (%s); retrying with the heartbeat", exc)
            self._awaiting.clear()
            return False
        self._awaiting_until = time.monotonic() + self.OUTCOME_WAIT
        log.info("node %s is up with %d function(s); pushed %s", self.node_id, len(self.configs),
                 ", ".join(sorted(self._awaiting.values())) or "nothing (pull-only services)")
        return True

    def _beat(self, registered: bool) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                if registered:
                    self.registry.heartbeat(self.node_id, self.settings.node_ttl)
                else:
                    registered = self._register()
                self._log_outcomes()
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)

    def _log_outcomes(self) -> None:
        """Tell the service author what the gateways made of each push, once."""
        for push_id, service in list(self._awaiting.items()):
            outcome = self.registry.push_outcome(push_id)
            if outcome is None:
                continue
            del self._awaiting[push_id]
            status = outcome.get("status")
            if status == "accepted" and not outcome.get("rejected"):
                log.info("push of %s accepted: %s function(s)", service, outcome.get("count"))
            elif status in ("accepted", "skipped"):
                log.log(logging.WARNING if outcome.get("rejected") else logging.INFO, "push of %s %s%s", service,
                        status, "".join(f"; refused {r['function']}: {r['reason']}"
                                        for r in outcome.get("rejected", ())))
            else:
                log.error("push of %s refused by the gateway: %s", service, "; ".join(outcome.get("reasons", ())))
        if self._awaiting and time.monotonic() > self._awaiting_until:
            log.warning("no gateway has taken the push of %s yet; it waits in Redis until one starts",
                        ", ".join(sorted(set(self._awaiting.values()))))
            self._awaiting.clear()

    def drain(self) -> None:
        """Warm shutdown began: take no new calls, keep heartbeating until :meth:`stop`."""
        if self.node_id is None or self._left:
            return
        try:
            self.registry.drain(self.node_id, self.settings.node_ttl)
            log.info("node %s takes no new calls; it finishes the running ones", self.node_id)
        except redis.RedisError as exc:
            log.warning("could not announce the shutdown (%s)", exc)

    def stop(self) -> None:
        """Stop the heartbeat and leave the registry (once, however often it is called)."""
        with self._leave_lock:
            if self._left:
                self._gone.wait(10)  # another thread is leaving: let it finish first
                return
            self._left = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.node_id is not None:
            try:
                self.registry.leave(self.node_id)
                log.info("node %s left the registry", self.node_id)
            except redis.RedisError as exc:
                log.warning("could not leave the registry (%s); the node expires by TTL", exc)
        self._gone.set()


class RedactedRequest(Request):
    """A call as the worker's remote control reports it (``inspect reserved``, ``scheduled``,
    ``query_task``: what Flower's worker page lists): with the argument reprs of the message,
    where the gateway wrote each sensitive argument as ``'***'``, never the values."""

    def info(self, safe: bool = False) -> dict:
        """The request's summary; always the safe form, whatever the caller asked for."""
        return super().info(safe=True)


def build_app(settings: Settings, services: list[GenApi]) -> Celery:
    """A Celery app with one task per function (they publish their replies), and the
    control task that answers a gateway's pull."""
    app = create_celery_app(settings)
    app.Task.Request = RedactedRequest  # every task made below, the functions' and the control one
    replier = Replier(settings.redis_url, Keys(settings.key_prefix))
    for function in all_functions(services):
        make_task(app, function, replier)
    make_describe_task(app, services, replier, settings.push_token)
    return app


#: the ``celery worker`` flags that turn task events on
TASK_EVENT_FLAGS = ("-E", "--task-events", "--events")


def worker_argv(services: list[GenApi], celery_args: list[str], task_events: bool = False) -> list[str]:
    """``celery worker`` arguments: the service queues, a distinct node name, and ``-E`` only
    with ``task_events`` (``GENAPI_TASK_EVENTS``). Events cost about 0.5 ms per call and Flower
    turns them on in every worker it sees while it runs; a user's own ``-E`` passes through."""
    queues = [service_queue(api.service) for api in services]
    args: list[str] = []
    rest = iter(celery_args)
    for arg in rest:  # -Q may not be repeated (the last wins), so merge the user's queues into ours
        if arg in ("-Q", "--queues"):
            value = next(rest, None)
            if value is None:
                raise SystemExit(f"genapi worker: {arg} needs a value")
            queues += value.split(",")
        elif arg.startswith("--queues="):
            queues += arg.split("=", 1)[1].split(",")
        elif arg.startswith("-Q") and len(arg) > 2:
            queues += arg[2:].split(",")
        else:
            args.append(arg)
    queues = [q for q in queues if q]
    argv = ["worker", "-Q", ",".join(dict.fromkeys(queues)), "--without-gossip", "--without-mingle"]
    if task_events and not any(a in TASK_EVENT_FLAGS for a in args):
        argv.append("-E")
    if not any(a in ("-n", "--hostname") or a.startswith("--hostname=") for a in args):
        argv += ["-n", f"genapi-{os.getpid()}@%h"]
    return argv + args


def run_worker(module_names: list[str], celery_args: list[str], settings: Settings) -> None:
    """Serve the modules' services until the worker is stopped (SIGTERM: warm shutdown)."""
    services = load_services(module_names)
    app = build_app(settings, services)
    client = redis.Redis.from_url(settings.redis_url)
    presence = Presence(Registry(client, Keys(settings.key_prefix)), services, settings)

    logs.access_log("worker")
    tracing.install(settings.otel, "worker")
    signals.load_receivers(settings.telemetry_receivers)
    if settings.log_format == "json":
        @after_setup_logger.connect(weak=False)
        @after_setup_task_logger.connect(weak=False)
        def _json_lines(logger=None, **kwargs):
            logs.reformat_handlers(logger, "json")

    @worker_ready.connect(weak=False)
    def _ready(sender=None, **kwargs):
        presence.start(sender.hostname)

    @worker_shutting_down.connect(weak=False)
    def _shutting_down(sender=None, how=None, **kwargs):
        # Celery calls this from its signal handler as the shutdown begins, so work in a
        # thread. Warm: gateways stop choosing this node now, and still count it alive while
        # it finishes its running calls; cold: leave at once.
        target = presence.drain if how == "Warm" else presence.stop
        threading.Thread(target=target, name="genapi-leave", daemon=True).start()

    @worker_shutdown.connect(weak=False)
    def _shutdown(sender=None, **kwargs):
        presence.stop()  # a no-op if the thread above already left

    app.worker_main(worker_argv(services, celery_args, settings.task_events))

"""``Gateway``: the Flask extension that serves ``/ws`` (and ``/ws/public``)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
from flask import Flask, jsonify, request
from flask_sock import Sock

from workers import logs, signals, tracing
from workers.celery_app import create_celery_app
from workers.protocol import Keys
from workers.registry import Registry
from workers.settings import Settings
from workers.signals import emit

from . import breakers, catalogue, connection, diagnostics, dispatch, metrics, overload, pipeline
from .admin_http import admin_blueprint, bearer_matches
from .auth import load_authenticator
from .cache import RegistryCache
from .deliveries import Deliveries, Pending
from .dispatch import Dispatcher
from .failed_configs import FailedConfigs
from .hooks import GatewayHooks
from .leases import SharedSchedule
from .listener import Listener
from .puller import Puller
from .ratelimit import RateLimiter, publish_settings
from .receiver import Receiver
from .relay import Relay
from .replies import Replies
from .retention import Retention
from .retry import Retry
from .selection import NodeSelector
from .trypage import try_page_blueprint

log = logging.getLogger("genapi.gateway")


def _refuse_compression() -> None:
    """Drop the client's permessage-deflate offer on the WebSocket routes: compression costs
    about 100 KB of memory per connection and CPU per frame, for small JSON frames."""
    if request.endpoint in ("genapi_ws", "genapi_ws_public"):
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


class Gateway:
    """Adds the CeleryGenApi WebSocket endpoints to a Flask app.

    ``Gateway(app)`` or ``gateway = Gateway(); gateway.init_app(app)``. Settings come from
    ``app.config["GENAPI_SETTINGS"]`` if set, else from the environment. Background work
    (reply listener, registry refresher, deadline sweeper, push receiver, pull and
    retention schedules) starts in the serving process: at boot under ``genapi gateway``
    (a gunicorn hook), else with the first ``/ws`` or ``/readyz`` request, or explicitly
    with :meth:`start`. Never before a fork: threads do not survive one.
    """

    def __init__(self, app: Flask | None = None, settings: Settings | None = None,
                 dispatcher: Dispatcher | None = None) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.deliveries = Deliveries()
        #: the reply side: where every call ends (its after-call hooks: breakers, then retry)
        self.replies = Replies(self)
        #: gateway-level hooks; add with the :meth:`before_execute` / :meth:`after_execute` decorators
        self.hooks = GatewayHooks(5000)
        self.breakers: breakers.Breakers | None = None
        #: how long a connection refused with ``Service temporarily unavailable`` waits before its next read
        self.backoff = overload.Backoff()
        self.gateway_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.connections: set = set()
        #: set by :meth:`drain`: new calls are refused while in-flight ones finish
        self.draining = False
        self._started = False
        self._settings_published = False
        #: live workers this process last saw (node id → services), for worker.joined/left
        self._live_workers: dict[str, list[str]] = {}
        self._start_lock = threading.Lock()
        #: /readyz's own short-timeout clients (a frozen Redis makes it 503, never hang)
        self._probes = diagnostics.Probes()
        self._threads: list[threading.Thread] = []
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = self.settings = app.config.get("GENAPI_SETTINGS") or self.settings or Settings.from_env()
        if settings.uses_dev_secret:
            log.warning("GENAPI_SECRET_KEY is not set: tokens are signed with the public development key")
        self.authenticator = load_authenticator(settings.authenticator)
        self.keys = Keys(settings.key_prefix)
        self.redis = redis.Redis.from_url(settings.redis_url)
        registry = Registry(self.redis, self.keys)
        # poll liveness well within a node's TTL: a snapshot older than the time between a
        # heartbeat and its expiry would show live workers as dead
        node_poll = min(1.0, max(0.05, (settings.node_ttl - settings.heartbeat_interval) / 2))
        self.cache = RegistryCache(registry, settings.refresh_interval, node_interval=node_poll,
                                   on_refresh=self._check_workers)
        self.selector = NodeSelector(self.redis, self.keys)
        self.hooks.timeout_ms = settings.hook_timeout_ms
        self.hooks.load(settings.before_execute, settings.after_execute)
        self.limiter = RateLimiter(settings.rate_limit_redis_url or settings.redis_url, self.keys,
                                   settings.rate_limits.timeout_ms)
        if settings.breakers.enabled:
            self.breakers = breakers.Breakers(self.redis, self.keys, settings.breakers)
            self.replies.after_call.append(self.breakers)  # every attempt counts, retried or not
        self.replies.after_call.append(Retry())
        #: the queue-length sampler of ``GENAPI_MAX_QUEUE_LENGTH`` (None: no limit, or not a Redis broker)
        self.queue_lengths = overload.QueueLengths.for_broker(settings.broker_url) \
            if settings.max_queue_length else None
        if settings.max_queue_length and self.queue_lengths is None:
            log.info("GENAPI_MAX_QUEUE_LENGTH is not applied: the broker is not Redis")
        self.steps = pipeline.build_steps(self.selector, self.limiter, settings.rate_limits, self.breakers,
                                          overload.LimitOverload(settings.max_in_flight, settings.max_queue_length,
                                                                 self.queue_lengths))
        if self.dispatcher is None:
            self.dispatcher = dispatch.for_broker(
                settings.broker_url, lambda: create_celery_app(settings, name="genapi-gateway"), settings.task_events)
        self.receiver = Receiver(self.redis, self.keys, FailedConfigs(self.redis, self.keys), settings.push_token,
                                 settings.registration_allowlist)
        puller = Puller(self.redis, self.keys, registry, self.receiver, self.dispatcher, settings.service_configs,
                        settings.pull_interval, settings.pull_timeout)
        retention = Retention(self.redis, self.keys, registry, settings.registry_retention)
        self.relay = Relay(self.redis, self.keys, self.gateway_id, settings)
        self.schedules = {
            "pull": SharedSchedule(self.redis, self.keys, "pull", self.gateway_id, puller.round,
                                   lease_ttl=settings.pull_timeout + 10, due_now=puller.forced),
            "retention": SharedSchedule(self.redis, self.keys, "retention", self.gateway_id, retention.sweep,
                                        lease_ttl=30, tick=min(1.0, retention.interval)),
            "relay-sweep": SharedSchedule(self.redis, self.keys, "relay-sweep", self.gateway_id, self.relay.sweep,
                                          lease_ttl=30, tick=1.0),
        }
        # the transport accepts frames above our limit, so an oversized one gets an error frame
        app.config.setdefault("SOCK_SERVER_OPTIONS", {
            "max_message_size": 2 * settings.max_payload_bytes + 65536,
            "ping_interval": 25,
            "subprotocols": connection.SUBPROTOCOLS,  # genapi.msgpack: binary frames; genapi.json or none: text
        })
        sock = Sock(app)
        sock.route("/ws", endpoint="genapi_ws")(self._endpoint(public=False))
        if settings.public_ws:
            sock.route("/ws/public", endpoint="genapi_ws_public")(self._endpoint(public=True))
        logs.access_log("gateway")
        #: OpenTelemetry spans per call (``GENAPI_OTEL``), or None
        self.tracing = tracing.install(settings.otel, "gateway")
        signals.load_receivers(settings.telemetry_receivers)
        if settings.metrics != "off":
            metrics.install()
            app.add_url_rule("/metrics", "genapi_metrics", self._metrics)
        app.add_url_rule("/healthz", "genapi_healthz", self._liveness)
        app.add_url_rule("/readyz", "genapi_readyz", self._readiness)
        app.add_url_rule("/functions.json", "genapi_functions", lambda: catalogue.functions_json(self))
        if settings.admin_token:
            app.register_blueprint(admin_blueprint(self))
        if settings.try_page:
            app.register_blueprint(try_page_blueprint(settings))
        if not settings.ws_compression:
            app.before_request(_refuse_compression)
        app.extensions["genapi"] = self

    def before_execute(self, hook):
        """Decorator: run ``hook(request_info, args)`` before every call is dispatched
        (:mod:`gateway_app.hooks`)."""
        self.hooks.before.append(hook)
        return hook

    def after_execute(self, hook):
        """Decorator: ``hook(request_info, result)`` returns the result every successful
        sync or async call answers with (:mod:`gateway_app.hooks`)."""
        self.hooks.after.append(hook)
        return hook

    @property
    def listening(self) -> bool:
        """Is the reply subscription up? Without it a reply would be lost."""
        return self._started and self.listener.connected.is_set()

    @property
    def reply_channel(self) -> str:
        return self.keys.reply_channel(self.gateway_id)

    def _endpoint(self, public: bool):
        def websocket(ws: Any) -> None:
            self.start()
            try:
                identity = self.authenticator(request, self.settings)
            except Exception:
                log.exception("authenticator failed; treating the connection as anonymous")
                identity = None
            connection.serve(self, ws, identity, public, self._client_address())
        return websocket

    def _client_address(self) -> str | None:
        """The client's address: the trusted proxy header's last entry when one is
        configured (the address that proxy saw), else the TCP peer."""
        header = self.settings.trusted_proxy_header
        if header:
            value = request.headers.get(header, "")
            entries = [part.strip() for part in value.split(",") if part.strip()]
            if entries:
                return entries[-1]
        return request.remote_addr

    def _liveness(self):
        """``/healthz``: the process answers; Redis is not asked (liveness is not readiness).
        ``status`` is ``ok``, or ``degraded`` when open file descriptors near the limit;
        the process's details (pid, uptime, memory, threads, descriptors, WebSockets) need
        the admin token."""
        report = diagnostics.liveness(self.gateway_id, len(self.connections))
        if not bearer_matches(request, self.settings.admin_token):
            report = {"status": report["status"]}
        return jsonify(report)

    def _readiness(self):
        """``/readyz``: 200 when Redis, the broker and the reply subscription are up and the
        process is not draining, else 503 (a load balancer stops sending new clients). The
        details (which check failed, this process's view) need the admin token. Each probe
        gives up within seconds, on clients of its own: a frozen Redis makes it 503, never hang."""
        self.start()
        probes = self._probes
        checks = {"redis": probes.redis(self.settings.redis_url), "broker": "ok",
                  "reply_subscription": "ok" if self.listening else "not subscribed",
                  "accepting_calls": "draining" if self.draining else "ok"}
        if self.settings.broker_url != self.settings.redis_url:
            checks["broker"] = probes.broker(self.settings.broker_url, self.dispatcher)
        ready = all(value == "ok" for value in checks.values())
        body: dict[str, Any] = {"status": "ok" if ready else "unavailable"}
        if bearer_matches(request, self.settings.admin_token):
            body.update(checks=checks, **self.process_status())
        return jsonify(body), 200 if ready else 503

    def _metrics(self):
        """``/metrics``: Prometheus text. ``GENAPI_METRICS=token`` asks for the admin token
        (with no admin token configured the route answers 404, like the admin API)."""
        if self.settings.metrics == "token":
            if not self.settings.admin_token:
                return jsonify({"error": "not found"}), 404
            if not bearer_matches(request, self.settings.admin_token):
                return jsonify({"error": "admin token required"}), 401, {"WWW-Authenticate": "Bearer"}
        body, content_type = metrics.render(self)
        return body, 200, {"Content-Type": content_type}

    def process_status(self) -> dict:
        """What this gateway process sees (for operators and tests): nodes, tasks, calls."""
        snapshot = self.cache.snapshot
        return {
            "gateway_id": self.gateway_id,
            "listening": self.listening,
            "draining": self.draining,
            "functions": len(snapshot.all_configs()),
            "tasks": sorted(c.task_name for c in snapshot.all_configs()),
            "nodes": sorted(n.node_id for n in snapshot.live_nodes(lambda n: not n.draining)),
            "draining_nodes": sorted(n.node_id for n in snapshot.live_nodes(lambda n: n.draining)),
            "connections": len(self.connections),
            "queued_bytes": sum(conn.queued_bytes for conn in list(self.connections)),
            "pending": len(self.deliveries),
            "detail_error": self.detail_error,
        }

    @property
    def detail_error(self) -> bool:
        """``GENAPI_DETAIL_ERROR``, unless an operator switched it at runtime."""
        override = self.cache.snapshot.detail_error
        return self.settings.detail_error if override is None else override

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the registry and start the background threads (once per process)."""
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            try:
                self.receiver.drain()  # pushes that waited while no gateway ran
                self.cache.refresh()
                self._publish_settings()
                if self.breakers is not None:
                    self.breakers.load(force=True)
            except redis.RedisError as exc:
                log.warning("initial registry load failed (%s); retrying in the background", exc)
            listener = self.listener = Listener(self.redis, {
                self.reply_channel: self.replies.on_message,
                self.keys.events: self._on_event,
                self.keys.relay_channel(self.gateway_id): self.relay.on_message,
            }, on_reconnect=self.cache.notify_changed)
            threads = [("genapi-listener", listener.run), ("genapi-refresher", self.cache.run),
                       ("genapi-sweeper", lambda: self.deliveries.run_sweeper(self.replies.timed_out)),
                       ("genapi-receiver", self.receiver.run), ("genapi-relay-heartbeat", self.relay.heartbeat)]
            threads += [(f"genapi-{name}", schedule.run) for name, schedule in self.schedules.items()]
            if self.queue_lengths is not None:
                threads.append(("genapi-queue-sampler", self.queue_lengths.run))
            for name, target in threads:
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
            listener.connected.wait(5)
            self._started = True

    def stop(self) -> None:
        """Stop the background threads (tests and embedding apps)."""
        if not self._started:
            return
        self.listener.stop()
        self.cache.stop()
        self.deliveries.stop()
        self.receiver.stop()
        self.relay.stop()
        for schedule in self.schedules.values():
            schedule.stop()
        if self.queue_lengths is not None:
            self.queue_lengths.stop()
        for thread in self._threads:
            thread.join(timeout=3)
        self._started = False

    def drain(self, grace: float = 3.0) -> None:
        """Shut down politely: refuse new calls, give in-flight ones ``grace`` seconds to be
        answered, answer the rest ``Service temporarily unavailable``, close every socket
        with 1001. Called on SIGTERM under ``genapi gateway``."""
        self.draining = True
        deadline = time.monotonic() + grace
        while len(self.deliveries) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.replies.drain()
        for conn in list(self.connections):
            conn.close(1001, "server shutting down")
        self.stop()

    # ------------------------------------------------------------------ delivery

    def _on_event(self, data: bytes) -> None:
        """A registry event: a forced pull wakes the pull schedule; anything else refreshes."""
        try:
            event = json.loads(data)
            kind = event.get("event")
        except (ValueError, AttributeError):
            event, kind = None, None
        if kind == "breaker":
            if self.breakers is not None:
                self.breakers.on_event(event)
        elif kind == "pull":
            self.schedules["pull"].wake()
        else:
            self.cache.notify_changed()

    def _check_workers(self) -> None:
        """After each registry refresh: calls whose worker died end as ``lost``."""
        nodes = {node.node_id: node for node in self.cache.snapshot.live_nodes(lambda n: True)}
        live = set(nodes)
        self.replies.lost_workers(live.__contains__)
        self._announce_workers(nodes)
        if not self._settings_published:
            self._publish_settings()
        if self.breakers is not None:
            try:
                self.breakers.load()  # every few seconds, in case an event was missed
            except redis.RedisError as exc:
                log.warning("could not read the breakers: %s", exc)

    def _announce_workers(self, nodes: dict) -> None:
        """``worker.joined`` / ``worker.left`` as this process sees live workers change."""
        known = self._live_workers
        for node_id in nodes.keys() - known.keys():
            emit(signals.worker_joined, self, node_id=node_id, services=sorted(nodes[node_id].services))
        for node_id in known.keys() - nodes.keys():
            emit(signals.worker_left, self, node_id=node_id, services=known[node_id])
        if nodes.keys() != known.keys():
            self._live_workers = {node_id: sorted(node.services) for node_id, node in nodes.items()}

    def _publish_settings(self) -> None:
        """Record this gateway's policy settings for ``genapi`` commands run elsewhere
        (retried after each registry refresh until it works)."""
        try:
            publish_settings(self.redis, self.keys, self.settings.rate_limits, self.settings.breakers)
            self._settings_published = True
        except redis.RedisError as exc:
            log.warning("could not record the policy settings: %s", exc)

    def cancel_remote(self, pending: Pending) -> None:
        """Tell the worker of a call nobody waits for any more: a stream stops at its next
        chunk, an async call not started yet is skipped."""
        handle = pending.handle
        remaining = 3600 if pending.deadline is None else max(1, int(pending.deadline - time.monotonic()) + 1)
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.cancelled(handle.task_id), "1", ex=remaining)
                if pending.response_type == "stream":
                    pipe.publish(self.keys.cancel_channel(handle.task_id), "cancel")
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not tell the worker to stop %s: %s", pending.task, exc)

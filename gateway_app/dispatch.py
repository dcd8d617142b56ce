"""The seam between the pipeline and Celery: send one call as a task.

Two dispatchers write the same Celery (protocol 2, JSON) task message:

* :class:`RedisQueueDispatcher` — for a Redis broker: one ``LPUSH`` of the message onto the
  queue's list, on a long-lived connection. kombu's own publish path builds two redis-py
  clients and reads the exchange table (``SMEMBERS``) for every message; that was half of
  the gateway's CPU per call.
* :class:`CeleryDispatcher` — ``send_task``, for any other broker (RabbitMQ).

Pipeline tests pass any object with the same ``send`` method.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from celery import Celery

from workers.protocol import TaskHeader

from .deliveries import Handle

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


class Dispatcher(Protocol):
    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None) -> Handle:
        """Enqueue the task; return its handle (task id, queue); raise on broker failure."""

    def ping(self) -> None:
        """Reach the broker once; raise if it does not answer."""


class CeleryDispatcher:
    """Sends tasks with ``send_task``: JSON, results ignored, expiring with the deadline."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None) -> Handle:
        options: dict[str, Any] = {"queue": queue, "ignore_result": True}
        if timeout_s is not None:
            # a task still queued when the caller gave up is discarded, never run late
            options["expires"] = timeout_s
        if meta is not None:
            options["headers"] = {TaskHeader.HEADER: meta}
        return Handle(self.app.send_task(task_name, kwargs=args, **options).id, queue)

    def ping(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)


def _short_repr(value: Any, limit: int = 1024) -> str:
    """What Flower shows as the arguments; bounded like Celery's ``argsrepr_maxsize``."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_message(task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None,
                 origin: str) -> dict:
    """The message kombu's Redis transport stores for a Celery protocol-2 JSON task (what
    ``send_task`` would write; ``tests/unit/test_dispatch.py`` compares the two)."""
    task_id = str(uuid.uuid4())
    expires = None
    properties: dict[str, Any] = {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2}
    if timeout_s is not None:
        expires = (datetime.now(UTC) + timedelta(seconds=timeout_s)).isoformat()
        properties["expiration"] = str(int(timeout_s * 1000))
    headers = {
        "lang": "py", "task": task_name, "id": task_id, "shadow": None, "eta": None, "expires": expires,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
        "parent_id": None, "argsrepr": "()", "kwargsrepr": _short_repr(args), "origin": origin,
        "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
    }
    if meta is not None:
        headers[TaskHeader.HEADER] = meta
    body = json.dumps([[], args, _EMBED]).encode()
    properties.update({
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    })
    return {
        "body": b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": properties,
    }


class RedisQueueDispatcher:
    """Pushes task messages straight onto the queue lists of a Redis broker."""

    def __init__(self, broker_url: str, max_connections: int = 50) -> None:
        # blocking pool: many greenlets wait for a connection instead of failing at the cap
        pool = redis.BlockingConnectionPool.from_url(broker_url, max_connections=max_connections, timeout=5)
        self.client = redis.Redis(connection_pool=pool)
        self.origin = f"gateway{os.getpid()}@{socket.gethostname()}"

    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None) -> Handle:
        message = task_message(task_name, args, queue, timeout_s, meta, self.origin)
        self.client.lpush(queue, json.dumps(message))
        return Handle(message["headers"]["id"], queue)

    def ping(self) -> None:
        self.client.ping()


def broker_check(dispatcher: Dispatcher) -> str:
    """``"ok"`` or why the broker cannot be reached (for ``/readyz``)."""
    try:
        dispatcher.ping()
    except Exception as exc:  # each transport raises its own errors
        return f"unavailable: {type(exc).__name__}: {exc}"
    return "ok"


def for_broker(broker_url: str, app_factory) -> Dispatcher:
    """The fast path for Redis brokers; Celery's ``send_task`` for the others."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisQueueDispatcher(broker_url)
    app = app_factory()
    # send_task builds an AsyncResult; keep one backend object, not one per greenlet
    app.conf.result_backend_thread_safe = True
    return CeleryDispatcher(app)

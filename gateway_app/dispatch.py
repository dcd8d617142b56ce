"""The seam between the pipeline and Celery: send one call as a task.

Two dispatchers write the same Celery (protocol 2, JSON) task message:

* :class:`RedisQueueDispatcher` — for a Redis broker: one ``LPUSH`` of the message onto the
  queue's list, on a long-lived connection. kombu's own publish path builds two redis-py
  clients and reads the exchange table (``SMEMBERS``) for every message; that was half of
  the gateway's CPU per call.
* :class:`CeleryDispatcher` — ``send_task``, for any other broker (RabbitMQ).

Both write the call's arguments for Flower and the worker's logs (the message's
``kwargsrepr``) with the function's ``sensitive`` arguments shown as ``'***'``. With
``GENAPI_TASK_EVENTS`` on, both also send Celery's ``task-sent`` event, so Flower shows a call
while it is still queued; with it off, a call costs nothing more than its message.

Pipeline tests pass any object with the same ``send`` method.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from base64 import b64encode
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from celery import Celery
from celery.utils.time import utcoffset

from workers.protocol import TaskHeader

from .deliveries import Handle

_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
#: what Flower and the logs show instead of a sensitive argument's value
REDACTED = "***"
#: Celery's event exchange; kombu's Redis transport makes it a fanout (PUB/SUB) exchange
EVENT_EXCHANGE = "celeryev"


class Dispatcher(Protocol):
    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None, *,
             sensitive: Collection[str] = ()) -> Handle:
        """Enqueue the task; return its handle (task id, queue); raise on broker failure.
        ``sensitive`` names the arguments whose values Flower must not show."""

    def ping(self) -> None:
        """Reach the broker once; raise if it does not answer."""


class CeleryDispatcher:
    """Sends tasks with ``send_task``: JSON, results ignored, expiring with the deadline."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None, *,
             sensitive: Collection[str] = ()) -> Handle:
        options: dict[str, Any] = {"queue": queue, "ignore_result": True, "kwargsrepr": kwargs_repr(args, sensitive)}
        if timeout_s is not None:
            # a task still queued when the caller gave up is discarded, never run late
            options["expires"] = timeout_s
        if meta is not None:
            options["headers"] = {TaskHeader.HEADER: meta}
        return Handle(self.app.send_task(task_name, kwargs=args, **options).id, queue)

    def ping(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)


def kwargs_repr(args: dict, sensitive: Collection[str] = (), limit: int = 1024) -> str:
    """What Flower and the worker's logs show as the arguments: each sensitive one as
    ``'***'``, bounded like Celery's ``kwargsrepr_maxsize``."""
    if sensitive:
        args = {name: REDACTED if name in sensitive else value for name, value in args.items()}
    text = repr(args)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_message(task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None,
                 origin: str, sensitive: Collection[str] = ()) -> dict:
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
        "parent_id": None, "argsrepr": "()", "kwargsrepr": kwargs_repr(args, sensitive), "origin": origin,
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


def sent_event_message(task: dict, queue: str) -> dict:
    """The ``task-sent`` event Celery publishes for a task message when
    ``task_send_sent_event`` is on, in the envelope kombu's Redis transport publishes
    (``tests/integration/test_task_events.py`` compares the two)."""
    headers = task["headers"]
    event = {
        "hostname": headers["origin"], "utcoffset": utcoffset(), "pid": os.getpid(),
        # receivers replace a task-sent event's clock with their own (clients never sync theirs)
        "clock": 0,
        "uuid": headers["id"], "root_id": headers["root_id"], "parent_id": headers["parent_id"],
        "name": headers["task"], "args": headers["argsrepr"], "kwargs": headers["kwargsrepr"],
        "retries": headers["retries"], "eta": headers["eta"], "expires": headers["expires"],
        "queue": queue, "exchange": "", "routing_key": queue,
        "timestamp": time.time(), "type": "task-sent",
    }
    return {
        "body": b64encode(json.dumps(event).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"hostname": headers["origin"]},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": EVENT_EXCHANGE, "routing_key": "task.sent"},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def event_channel(db: int, routing_key: str) -> str:
    """The PUB/SUB channel kombu's Redis transport publishes a ``celeryev`` event on: its
    fanout prefix ``/{db}.``, the exchange, and the routing key (``fanout_patterns``, on by
    default), which event receivers match with ``PSUBSCRIBE /{db}.celeryev/*``."""
    return f"/{db}.{EVENT_EXCHANGE}/{routing_key}"


class RedisQueueDispatcher:
    """Pushes task messages straight onto the queue lists of a Redis broker.

    With ``task_events`` it publishes each call's ``task-sent`` event in the same round trip
    (a pipeline); without, a call is one ``LPUSH``."""

    def __init__(self, broker_url: str, max_connections: int = 50, task_events: bool = False) -> None:
        # blocking pool: many greenlets wait for a connection instead of failing at the cap
        pool = redis.BlockingConnectionPool.from_url(broker_url, max_connections=max_connections, timeout=5)
        self.client = redis.Redis(connection_pool=pool)
        self.origin = f"gateway{os.getpid()}@{socket.gethostname()}"
        self.task_events = task_events
        self.event_channel = event_channel(pool.connection_kwargs.get("db", 0), "task.sent")

    def send(self, task_name: str, args: dict, queue: str, timeout_s: float | None, meta: dict | None, *,
             sensitive: Collection[str] = ()) -> Handle:
        message = task_message(task_name, args, queue, timeout_s, meta, self.origin, sensitive)
        if self.task_events:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lpush(queue, json.dumps(message))
                pipe.publish(self.event_channel, json.dumps(sent_event_message(message, queue)))
                pipe.execute()
        else:
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


def for_broker(broker_url: str, app_factory, task_events: bool = False) -> Dispatcher:
    """The fast path for Redis brokers; Celery's ``send_task`` for the others. With
    ``task_events`` (``GENAPI_TASK_EVENTS``) each call also sends its ``task-sent`` event."""
    if broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisQueueDispatcher(broker_url, task_events=task_events)
    app = app_factory()
    # send_task builds an AsyncResult; keep one backend object, not one per greenlet
    app.conf.result_backend_thread_safe = True
    app.conf.task_send_sent_event = task_events
    return CeleryDispatcher(app)

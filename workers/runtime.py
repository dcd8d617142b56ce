"""The worker-side wrapper: one Celery task per function, which runs it and publishes the reply.

The gateway sends each call with a ``genapi`` header: the reply channel, a correlation
``ref``, the deadline and the request info. The wrapper checks the deadline, builds the
call arguments (``arg_orders``, ``"map"``, conversions), runs the function, and publishes
exactly one reply message. A task called without that header (plain Celery) just returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from . import pushconfig
from .argtypes import convert
from .errors import GenApiError
from .funconfig import FunConfig
from .genapi import Function, GenApi
from .protocol import DESCRIBE_TASK, encode, reply_error, reply_result, reply_started

log = logging.getLogger("genapi.worker")


class Replier:
    """Publishes reply messages; one Redis client per process (redis-py is fork-safe)."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)

    def send(self, channel: str, message: dict) -> None:
        try:
            payload = encode(message)
        except (TypeError, ValueError) as exc:
            payload = encode(reply_error(message["ref"], f"result is not JSON serialisable: {exc}"))
        self.client.publish(channel, payload)


def call_arguments(config: FunConfig, args: dict) -> list:
    """The positional arguments the function gets, from the validated argument map."""
    specs = config.arg_types
    if not specs:
        return []
    if config.arg_orders == "map":
        return [{name: convert(spec, args.get(name)) for name, spec in specs.items()}]
    return [convert(specs[name], args.get(name)) for name in config.arg_orders]


def describe_exception(exc: BaseException) -> str:
    """The detail shown to clients when the gateway runs with ``detail_error`` on."""
    if isinstance(exc, GenApiError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def invoke(function: Function, args: dict, request_info: dict | None) -> Any:
    """Run the function with the call arguments (and ``request_info=`` if configured)."""
    config = function.config
    positional = call_arguments(config, args)
    if config.request_info:
        return function.func(*positional, request_info=request_info or {})
    return function.func(*positional)


def make_task(app: Celery, function: Function, replier: Replier) -> Callable:
    """Register the Celery task that serves ``function`` on ``app``."""
    config = function.config

    def run(task, **args: Any) -> Any:
        meta = getattr(task.request, "genapi", None)
        if not meta:  # called as a plain Celery task
            return invoke(function, args, None)
        ref, channel, deadline = meta["ref"], meta["reply"], meta.get("deadline")
        if deadline is not None and time.time() > deadline:
            log.info("%s: dropped, the caller's deadline passed before it started", config.task_name)
            return None
        if deadline is None and channel:
            # nothing times such a call out: tell the gateway who runs it, so it can answer
            # if this worker dies
            replier.send(channel, reply_started(ref, task.request.hostname))
        try:
            message = reply_result(ref, invoke(function, args, meta.get("info")))
        except GenApiError as exc:
            message = reply_error(ref, describe_exception(exc))
        except Exception as exc:
            log.exception("%s raised", config.task_name)
            message = reply_error(ref, describe_exception(exc))
        if channel:  # response_type "none" wants no reply
            replier.send(channel, message)
        return None

    run.__name__ = function.func.__name__
    run.__doc__ = function.func.__doc__
    return app.task(run, name=config.task_name, bind=True, ignore_result=True, typing=False)


#: how long a pull answer waits in Redis for the gateway that asked (seconds)
PULL_REPLY_TTL = 60


def make_describe_task(app: Celery, services: list[GenApi], replier: Replier, push_token: str | None) -> Callable:
    """Register the control task a gateway in pull mode sends to a service queue.

    It answers on the list named ``reply_key`` with the service's PushConfig (signed like a
    push), or with ``{"unchanged": true}`` when the gateway already has ``known_version``.
    """
    by_service = {api.service: api for api in services}

    def describe(task, service: str, known_version: str | None = None, reply_key: str | None = None) -> None:
        node = task.request.hostname
        api = by_service.get(service)
        if api is None:
            answer: dict = {"service": service, "error": f"node {node} does not serve {service!r}"}
        elif known_version is not None and known_version == api.config_version:
            answer = {"service": service, "nodes": [node], "config_version": known_version, "unchanged": True}
        else:
            answer = pushconfig.build(service, node, api.configs(), api.config_version, push_token)
        if reply_key:
            with replier.client.pipeline(transaction=False) as pipe:
                pipe.lpush(reply_key, encode(answer))
                pipe.expire(reply_key, PULL_REPLY_TTL)
                pipe.execute()

    return app.task(describe, name=DESCRIBE_TASK, bind=True, ignore_result=True, typing=False)

"""The worker-side wrapper: one Celery task per function, which runs it and publishes the reply.

The gateway sends each call with a ``genapi`` header (:class:`~workers.protocol.TaskHeader`):
the reply channel, a correlation ``ref``, the deadline, the mode and the request info. The
wrapper checks the deadline (and, for async calls and streams, an earlier cancel), builds
the call arguments (``arg_orders``, ``"map"``, conversions), runs the function and publishes
its replies: one ``result``/``error`` for sync and async calls, chunks and one end for a
stream (:mod:`workers.streams`), nothing for ``none``. Every reply names the node. A task
called without that header (plain Celery) just returns.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from . import hooks, pushconfig, signals, tracing
from .argtypes import convert
from .backoff import backoff_ms
from .errors import GenApiError
from .funconfig import FunConfig
from .genapi import Function, GenApi
from .protocol import (
    DESCRIBE_TASK,
    PERMISSION_DENIED,
    Keys,
    TaskHeader,
    encode,
    reply_error,
    reply_rejected,
    reply_result,
    reply_started,
)
from .streams import CancelWatcher, StreamHandle, pump

log = logging.getLogger("genapi.worker")


class Replier:
    """Publishes reply messages; one Redis client per process (redis-py is fork-safe)."""

    def __init__(self, redis_url: str, keys: Keys | None = None) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.keys = keys or Keys()

    def send(self, channel: str, message: dict) -> None:
        try:
            payload = encode(message)
        except (TypeError, ValueError) as exc:
            payload = encode(reply_error(message["ref"], f"result is not JSON serialisable: {exc}",
                                         message.get("node"), unexpected=True))
        self.client.publish(channel, payload)

    def publisher(self, channel: str) -> Callable[[str], None]:
        """A callable that publishes encoded payloads on ``channel`` (for streams)."""
        return lambda payload: self.client.publish(channel, payload)

    def cancelled(self, task_id: str | None) -> bool:
        """Was this call cancelled before it started?"""
        return bool(task_id) and bool(self.client.exists(self.keys.cancelled(task_id)))


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


#: what a ``request_info=True`` function gets (PRODUCT.md); hooks and permission callbacks
#: also get the service, request type and version
FUNCTION_INFO = ("request_id", "user_id", "device_id", "roles", "stream")


def invoke(function: Function, args: dict, request_info: dict | None) -> Any:
    """Run the function with the call arguments (and ``request_info=`` if configured)."""
    config = function.config
    positional = call_arguments(config, args)
    if config.request_info:
        info = request_info or {}
        return function.func(*positional, request_info={k: info[k] for k in FUNCTION_INFO if k in info})
    return function.func(*positional)


def _outcome(function: Function, args: dict, header: TaskHeader, node: str) -> dict:
    """Run the function once: its ``result`` or ``error`` reply message."""
    try:
        return reply_result(header.ref, invoke(function, args, header.info), node)
    except GenApiError as exc:
        return reply_error(header.ref, describe_exception(exc), node)
    except Exception as exc:
        log.exception("%s raised", function.config.task_name)
        return reply_error(header.ref, describe_exception(exc), node, unexpected=True)


class Guards:
    """A function's ``before_execute``, ``permission_callback`` and ``after_execute``,
    loaded once when its task is registered."""

    def __init__(self, config: FunConfig) -> None:
        self.name = config.task_name
        self.timeout_ms = config.hook_timeout
        self.before = hooks.resolve(config.before_execute)
        self.after = hooks.resolve(config.after_execute)
        callback = hooks.resolve(config.permission_callback)
        self.callback = callback[0] if callback else None

    def __bool__(self) -> bool:
        return bool(self.before or self.after or self.callback)

    def admit(self, info: dict, args: dict) -> dict:
        """The before hook, then the permission callback: the arguments to run with, or
        :class:`~workers.hooks.Rejection` carrying the client's message."""
        if self.before is not None:
            args = hooks.before(self.before, info, args, self.timeout_ms, self.name)
        if self.callback is not None and not hooks.permitted(self.callback, info, args, self.timeout_ms, self.name):
            raise hooks.Rejection(PERMISSION_DENIED)
        return args

    def finish(self, info: dict, message: dict) -> dict:
        """The after hook replaces a successful result."""
        if self.after is not None and message["type"] == "result":
            message = dict(message, data=hooks.after(self.after, info, message["data"], self.timeout_ms, self.name))
        return message


def run_call(function: Function, args: dict, header: TaskHeader, node: str, replier: Replier,
             guards: Guards | None = None) -> Ended:
    """A sync, async or none call. A ``none`` call retries here (nobody else hears of its
    failure), with the original's backoff; the others are retried by the gateway."""
    info = header.info or {}
    if guards:
        try:
            args = guards.admit(info, args)
        except hooks.Rejection as rejection:
            log.info("%s: refused before running: %s", function.config.task_name, rejection)
            if header.reply:
                replier.send(header.reply, reply_rejected(header.ref, str(rejection), node))
            return Ended("rejected", str(rejection))
    message = _outcome(function, args, header, node)
    remaining = header.retries if header.reply is None else 0
    while message["type"] == "error" and remaining > 0:
        time.sleep(backoff_ms(remaining) / 1000)
        remaining -= 1
        message = _outcome(function, args, header, node)
    if guards:
        message = guards.finish(info, message)
    if header.reply:
        replier.send(header.reply, message)
    return Ended(message["type"], message.get("error"), bool(message.get("unexpected")))


def run_stream(function: Function, args: dict, header: TaskHeader, node: str, task_id: str,
               replier: Replier, guards: Guards | None = None) -> Ended:
    """A stream: chunks and one end, until done, cancelled or past the deadline. Its
    before hook and permission callback run first; an after hook does not apply to chunks.
    A handle-driven stream that goes on after the function returned ends as ``streaming``."""
    if guards:
        try:
            args = guards.admit(header.info or {}, args)
        except hooks.Rejection as rejection:
            replier.send(header.reply, reply_rejected(header.ref, str(rejection), node))
            return Ended("rejected", str(rejection))
    cancel = threading.Event()
    watcher = CancelWatcher(replier.client, replier.keys.cancel_channel(task_id), cancel)
    if replier.cancelled(task_id):  # cancelled before we subscribed
        watcher.stop()
        return Ended("cancelled")
    handle = StreamHandle(replier.publisher(header.reply), header.ref, node, header.deadline, cancel)
    info = dict(header.info or {}, stream=handle)
    try:
        produced = invoke(function, args, info)
        if inspect.isgenerator(produced):
            pump(produced, handle, describe_exception)
    except GenApiError as exc:
        handle.error(describe_exception(exc))
    except Exception as exc:
        log.exception("%s raised", function.config.task_name)
        handle.error(describe_exception(exc), unexpected=True)
    if handle.ended:  # a handle-driven stream may go on after the function returns
        handle.wait(5)
        watcher.stop()
        error, unexpected = handle.failure or (None, False)
        return Ended(handle.outcome, error, unexpected)
    threading.Thread(target=_stop_when_done, args=(handle, watcher), daemon=True,
                     name="genapi-stream-watch").start()
    return Ended("streaming")


def _stop_when_done(handle: StreamHandle, watcher: CancelWatcher) -> None:
    while not handle.wait(0.5):
        if handle.cancelled:
            break
    watcher.stop()


@dataclass(frozen=True)
class Ended:
    """How a call ended on this worker (for telemetry and Flower): the reply's type
    (``result``, ``error``, ``rejected``, ``last``, ``end``…), its error, and whether the
    error is an exception the function did not mean to raise."""

    kind: str
    error: str | None = None
    unexpected: bool = False


def flower_result(outcome: str, detail: str | None = None) -> str:
    """What a gateway call's task returns, for Flower's *result* column only (results are
    not stored): the reply itself went to the client over Redis pub/sub."""
    return f"{outcome}: {detail}" if detail else f"{outcome} (reply sent to the client)"


def _observed(task, header: TaskHeader, node: str, serve: Callable[[], Ended]) -> str:
    """Run ``serve`` between ``worker_pool.task.start`` and ``.stop``, or ``.exception`` when
    the function raised an exception it did not mean to (or the task itself failed)."""
    fields = {"pool_name": node, "task": task.name, "task_id": task.request.id,
              "request_id": header.request_id, "mode": header.mode}
    started = time.monotonic()
    signals.emit(signals.worker_pool_task_start, task, system_time=time.time_ns(), **fields)
    try:
        ended = serve()
    except BaseException as exc:
        signals.emit(signals.worker_pool_task_exception, task, duration=time.monotonic() - started, **fields,
                     kind="error", reason=describe_exception(exc), stacktrace=traceback.format_exc())
        raise
    if ended.unexpected:
        signals.emit(signals.worker_pool_task_exception, task, duration=time.monotonic() - started, **fields,
                     kind="error", reason=ended.error, stacktrace=None)
    else:
        signals.emit(signals.worker_pool_task_stop, task, duration=time.monotonic() - started, **fields,
                     outcome=ended.kind)
    return flower_result(ended.kind, None if header.reply else "mode none")


def make_task(app: Celery, function: Function, replier: Replier) -> Callable:
    """Register the Celery task that serves ``function`` on ``app``."""
    config = function.config
    guards = Guards(config)

    def run(task, **args: Any) -> Any:
        raw = getattr(task.request, TaskHeader.HEADER, None)
        if not raw:  # called as a plain Celery task
            return invoke(function, args, None)
        header = TaskHeader.from_json(raw)
        node = task.request.hostname
        if header.deadline is not None and time.time() > header.deadline:
            log.info("%s: dropped, the caller's deadline passed before it started", config.task_name)
            return flower_result("dropped", "the caller's deadline passed before it started")
        if header.mode == "async" and replier.cancelled(task.request.id):
            log.info("%s: dropped, cancelled before it started", config.task_name)
            return flower_result("dropped", "cancelled before it started")
        if header.track and header.reply:  # the gateway learns which worker runs it
            replier.send(header.reply, reply_started(header.ref, node))
        if header.trace:
            with tracing.task_span(task.name, header.trace, {"genapi.mode": header.mode,
                                                             "genapi.request_id": str(header.request_id)}):
                return _run(task, args, header, node)
        return _run(task, args, header, node)

    def _run(task, args: dict, header: TaskHeader, node: str) -> str:
        watched = signals.listening(signals.worker_pool_task_stop) or \
            signals.listening(signals.worker_pool_task_start) or signals.listening(signals.worker_pool_task_exception)
        if watched:
            return _observed(task, header, node, lambda: _serve(task, args, header, node))
        return flower_result(_serve(task, args, header, node).kind, None if header.reply else "mode none")

    def _serve(task, args: dict, header: TaskHeader, node: str) -> Ended:
        if header.mode == "stream" and header.reply:
            return run_stream(function, args, header, node, task.request.id, replier, guards)
        return run_call(function, args, header, node, replier, guards)

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

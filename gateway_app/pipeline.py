"""The request pipeline: one ordered list of small steps, each testable on its own.

A step is ``step(gateway, call) -> None``. It reads and fills the :class:`Call`, and stops
the request by raising :class:`~gateway_app.errors.Rejected` (answered with an error
frame) or :class:`Answered` (it already answered). Steps that keep state (node selection's
counters, the rate limiter, the breakers) are objects built once per gateway by
:func:`build_steps`, in the order of PRODUCT.md: permissions before rate limits (a denied
call costs no budget), rate limits before argument validation, the gateway's before hooks
and the breakers just before a worker is chosen. A policy that is not configured costs a
check of a flag. How a dispatched call ends is :mod:`gateway_app.replies`' business.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workers.argtypes import ArgumentError, validate_args
from workers.funconfig import FunConfig
from workers.policy_config import RateLimitConfig
from workers.protocol import INTERNAL_ERROR, UNAVAILABLE, UNKNOWN_REQUEST_ID, error_frame, response
from workers.signals import (
    emit,
    executor_request_exception,
    executor_request_start,
    executor_request_stop,
    worker_pool_task_rejected,
)

from . import builtins, decoding, errors, permissions, ratelimit, relay, versions
from .breakers import Breakers
from .deliveries import Pending
from .errors import Rejected
from .ratelimit import RateLimiter
from .selection import Choice, NodeSelector

if TYPE_CHECKING:
    from .connection import Connection
    from .extension import Gateway

log = logging.getLogger("genapi.gateway")


class Answered(Exception):
    """A step sent the answer itself (built-in services); the pipeline stops quietly."""


@dataclass
class Call:
    """One request travelling through the pipeline."""

    conn: Connection
    raw: str | bytes
    payload: dict | None = None
    request: decoding.Request | None = None
    config: FunConfig | None = None
    args: dict | None = None
    choice: Choice | None = None
    started: float = 0.0

    @property
    def request_id(self) -> Any:
        if self.request is not None:
            return self.request.request_id
        return decoding.request_id_of(self.payload) if self.payload is not None else UNKNOWN_REQUEST_ID


Step = Callable[["Gateway", Call], None]


def authenticate(gateway: Gateway, call: Call) -> None:
    """No identity on an endpoint that needs one: ``Authentication required``."""
    if call.conn.identity is None and not call.conn.public:
        try:
            call.payload = decoding.parse(call.raw, gateway.settings.max_payload_bytes, call.conn.binary)
        except Rejected:
            pass  # the request id is unknown; the answer is the same
        raise errors.auth_required()


def parse(gateway: Gateway, call: Call) -> None:
    """Size limit on the raw frame, then JSON (MessagePack on a binary connection)."""
    call.payload = decoding.parse(call.raw, gateway.settings.max_payload_bytes, call.conn.binary)


def decode(gateway: Gateway, call: Call) -> None:
    """Required fields and their types."""
    call.request = request = decoding.decode(call.payload)
    if executor_request_start.receivers:
        identity = call.conn.identity
        emit(executor_request_start, gateway, system_time=time.time_ns(), request_id=request.request_id,
             service=request.service, request_type=request.request_type, version=request.version,
             user_id=identity.user_id if identity else None, mode=None)


def refuse_when_draining(gateway: Gateway, call: Call) -> None:
    """The gateway is shutting down: the client should retry on another one."""
    if gateway.draining:
        raise errors.unavailable("draining")


def answer_builtin(gateway: Gateway, call: Call) -> None:
    """The ``gateway`` and ``relay`` services are answered here, without a worker."""
    service = call.request.service
    if service == builtins.SERVICE:
        result = builtins.answer(gateway, call.conn, call.request)
        call.conn.send(response(call.request_id, result=result, success=True))
        raise Answered
    if service == relay.SERVICE:
        gateway.relay.answer(call.conn, call.request)
        raise Answered


def resolve(gateway: Gateway, call: Call) -> None:
    """Pick the FunConfig by version (reference §3.3)."""
    request = call.request
    by_version = gateway.cache.snapshot.versions(request.service, request.request_type)
    if by_version is None:
        # the catalogue's message does not name the service: the log does
        log.info("unknown function %s.%s (version %s) requested; `gateway/functions` lists what exists",
                 request.service, request.request_type, request.version or "latest")
    call.config = versions.resolve(by_version, request.request_type, request.version)


def authorize(gateway: Gateway, call: Call) -> None:
    """``check_permission`` against the session identity."""
    if not permissions.allowed(call.config, call.conn.identity, call.request.args):
        raise errors.permission_denied()


class RateLimit:
    """The limits in force (``GENAPI_RATE_LIMITS``, or an operator's runtime replacement)
    for this call's user, device, address or argument."""

    def __init__(self, limiter: RateLimiter | None, configured: RateLimitConfig) -> None:
        self.limiter = limiter
        self.configured = configured
        self._runtime: str | None = None
        self.config = configured

    def current(self, runtime: str | None) -> RateLimitConfig:
        if runtime != self._runtime:
            self.config = ratelimit.current(self.configured, runtime)[0]
            if self.limiter is not None:
                self.limiter = self.limiter.retimed(self.config.timeout_ms)
            self._runtime = runtime
        return self.config

    def __call__(self, gateway: Gateway, call: Call) -> None:
        config = self.current(gateway.cache.snapshot.runtime.get(ratelimit.RUNTIME_FIELD))
        if not config.active or self.limiter is None:
            return
        request = call.request
        self.limiter.check(config, request.service, request.request_type, _facts(call), request.args)


def validate(gateway: Gateway, call: Call) -> None:
    """Arguments against ``arg_types``; defaults filled in."""
    try:
        call.args = validate_args(call.config.arg_types, call.request.args)
    except ArgumentError as exc:
        raise errors.bad_arguments(str(exc)) from None


def run_gateway_hooks(gateway: Gateway, call: Call) -> None:
    """The gateway's own before hooks (``@gateway.before_execute``): they may rewrite the
    arguments or refuse the call."""
    if gateway.hooks.before:
        call.args = gateway.hooks.run_before(request_info(call), call.args)


class CheckBreaker:
    """An open service breaker answers ``Service temporarily unavailable`` before dispatch."""

    def __init__(self, breakers: Breakers | None) -> None:
        self.breakers = breakers

    def __call__(self, gateway: Gateway, call: Call) -> None:
        if self.breakers is not None and self.breakers.views:
            try:
                self.breakers.admit(call.config.service, call.config.timeout)
            except Rejected:
                _breaker_refused(gateway, call, f"service:{call.config.service}")
                raise


def _breaker_refused(gateway: Gateway, call: Call, pool_name: str) -> None:
    emit(worker_pool_task_rejected, gateway, system_time=time.time_ns(), pool_name=pool_name,
         reason="circuit_open", request_id=call.request.request_id, service=call.config.service,
         request_type=call.config.request_type)


class SelectNode:
    """Which worker (or the shared service queue) runs the call; ``choose_node_mode``.

    No live worker has the task: ``Service temporarily unavailable`` at once, instead of a
    task waiting in a queue nobody reads. Workers whose breaker is open are left out; while
    any is, an ``"any"`` call goes to a healthy worker's own queue instead of the shared one.
    """

    def __init__(self, selector: NodeSelector, breakers: Breakers | None = None) -> None:
        self.selector = selector
        self.breakers = breakers

    def __call__(self, gateway: Gateway, call: Call) -> None:
        snapshot = gateway.cache.snapshot
        config = call.config
        serving = snapshot.nodes_for_task(config.task_name)
        tripped = self.breakers.open_workers(config.service) if self.breakers is not None else None
        if tripped:  # fewer workers than the service queue has: "any" picks one of these directly
            serving = [node for node in serving if node.node_id not in tripped]
            if not serving:
                _breaker_refused(gateway, call, f"worker:{config.service}:*")
                raise errors.unavailable("worker_breakers_open")
        call.choice = self.selector.select(config, serving, len(snapshot.nodes_for_service(config.service)),
                                           None if config.choose_node_mode == "any" else _facts(call))


def _facts(call: Call) -> dict:
    """What a selection mode or a rate limit may look at: the request id, the arguments,
    the identity, the client's address."""
    request, identity = call.request, call.conn.identity
    return {"request_id": request.request_id, "args": call.args, "service": request.service,
            "request_type": request.request_type,
            "user_id": identity.user_id if identity else None,
            "device_id": (identity.device_id if identity else None) or request.device_id,
            "ip_address": call.conn.address}


def request_info(call: Call) -> dict:
    """What a ``request_info=True`` function, a hook or a permission callback receives:
    identity from the session only; the token's device id wins over the request's."""
    identity, request = call.conn.identity, call.request
    return {
        "request_id": request.request_id,
        "user_id": identity.user_id if identity else None,
        "device_id": (identity.device_id if identity else None) or request.device_id,
        "roles": list(identity.roles) if identity else [],
        "service": request.service,
        "request_type": request.request_type,
        "version": call.config.version if call.config is not None else request.version,
    }


def needs_info(config: FunConfig) -> bool:
    """Does the worker need the request info (the function, its hooks, its callback)?"""
    return bool(config.request_info or config.before_execute or config.after_execute or config.permission_callback)


def dispatch(gateway: Gateway, call: Call) -> None:
    """Hand the call to the reply side, which sends it and ends it. Async calls are
    acknowledged, and streams opened, before the task can possibly answer."""
    config, request, conn = call.config, call.request, call.conn
    mode = config.response_type
    gateway.backoff.admitted(conn)
    pending = Pending(conn, request.request_id, mode,
                      None if config.timeout is None else time.monotonic() + config.timeout / 1000,
                      task=config.task_name, node=call.choice.node, config=config, args=call.args,
                      info=request_info(call) if needs_info(config) or gateway.hooks.after else None,
                      queue=call.choice.queue, started=call.started or time.monotonic())
    if gateway.tracing is not None:
        pending.span = gateway.tracing.server_span(config.service, config.request_type, pending.started,
                                                   _span_attributes(call))
    if mode == "none":
        try:
            gateway.replies.fire_and_forget(pending)
        except Exception:
            log.exception("could not send %s to %s", config.task_name, pending.queue)
            raise errors.unavailable("broker_unavailable") from None
        if executor_request_stop.receivers:
            _stopped(gateway, call, "dispatched", None, node=pending.node)
        if pending.span is not None:
            gateway.tracing.end(pending.span, "dispatched")
        return
    if not gateway.listening:  # the reply would be published to nobody
        raise errors.unavailable("no_reply_subscription")
    if mode == "async":
        conn.send(response(request.request_id, success=True, is_async=True))
    elif mode == "stream":
        conn.send(response(request.request_id, result="init", success=True, is_async=True, has_more=True))
    gateway.replies.start(pending)


def build_steps(selector: NodeSelector, limiter: RateLimiter | None = None,
                limits: RateLimitConfig = RateLimitConfig(), breakers: Breakers | None = None,
                overload: Step | None = None) -> list[Step]:
    """The order every request goes through, with the stateful steps built once.
    ``overload`` (:class:`~gateway_app.overload.LimitOverload`) runs just before dispatch."""
    return [authenticate, parse, decode, refuse_when_draining, answer_builtin, resolve, authorize,
            RateLimit(limiter, limits), validate, run_gateway_hooks, CheckBreaker(breakers),
            SelectNode(selector, breakers), *([overload] if overload is not None else []), dispatch]


def _span_attributes(call: Call) -> dict:
    request, config = call.request, call.config
    return {"rpc.system": "genapi", "rpc.service": config.service, "rpc.method": config.request_type,
            "genapi.version": config.version or "", "genapi.mode": config.response_type,
            "genapi.request_id": str(request.request_id)}


def _stopped(gateway: Gateway, call: Call, outcome: str, error: str | None, node: str | None = None) -> None:
    """``executor.request.stop`` for a request the pipeline answered (or sent as ``none``)."""
    request, config, identity = call.request, call.config, call.conn.identity
    mode = config.response_type if config is not None else ("sync" if outcome == "ok" else None)
    emit(executor_request_stop, gateway, duration=time.monotonic() - call.started,
         request_id=call.request_id, service=request.service if request else None,
         request_type=request.request_type if request else None,
         version=config.version if config is not None else (request.version if request else None),
         user_id=identity.user_id if identity else None, mode=mode, success=outcome in ("ok", "dispatched"),
         **{"async": mode in ("async", "stream")}, outcome=outcome, error=error, node=node)


def run(gateway: Gateway, conn: Connection, raw: str | bytes) -> float:
    """Run one frame through the steps; every failure becomes one error frame. Returns how
    long the connection should wait before its next frame is read (0 but after a
    ``Service temporarily unavailable`` refusal: :class:`~gateway_app.overload.Backoff`)."""
    call = Call(conn, raw, started=time.monotonic())
    try:
        for step in gateway.steps:
            step(gateway, call)
    except Rejected as rejected:  # found before anything ran: answered in every mode
        conn.send(error_frame(call.request_id, rejected.error, rejected.can_retry))
        if executor_request_stop.receivers:
            _stopped(gateway, call, rejected.code, rejected.error)
        if gateway.tracing is not None and call.config is not None:
            span = gateway.tracing.server_span(call.config.service, call.config.request_type, call.started,
                                               _span_attributes(call))
            gateway.tracing.end(span, rejected.code, rejected.error)
        # every "come back later" refusal paces the connection's reading (overload.Backoff)
        return gateway.backoff.refused(conn) if rejected.error == UNAVAILABLE else 0.0
    except Answered:
        if executor_request_stop.receivers:
            _stopped(gateway, call, "ok", None)
    except Exception as exc:
        log.exception("unexpected error in the pipeline")
        conn.send(error_frame(call.request_id, INTERNAL_ERROR))
        if executor_request_exception.receivers:
            request, identity = call.request, conn.identity
            emit(executor_request_exception, gateway, duration=time.monotonic() - call.started,
                 request_id=call.request_id, service=request.service if request else None,
                 request_type=request.request_type if request else None,
                 version=request.version if request else None, user_id=identity.user_id if identity else None,
                 mode=call.config.response_type if call.config is not None else None, kind="error",
                 reason=f"{type(exc).__name__}: {exc}", stacktrace=traceback.format_exc(), outcome="internal_error",
                 node=None)
    return 0.0

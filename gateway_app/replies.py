"""The reply side: how every call that expects an answer ends, in one place.

:meth:`Replies.settle` is the only code that sends a call's terminal frame. Whatever ends
the call — the worker's reply, its deadline, its worker dying, a cancel, the client
leaving, the gateway draining, a failed dispatch — becomes an :class:`Outcome` and goes
through it: the first to take the call from the pending table wins, the others find
nothing. Before the frame is sent, each after-call hook sees the outcome and may take the
call over instead (retry re-dispatches it); metrics, breakers and after-hooks hang there
too, as Dramatiq's middleware does (``after_process_message``).

Worker replies arrive on the process's reply channel and are handled by type
(:attr:`Replies.handlers`): ``started`` (which node runs it), ``chunks`` (stream frames,
never after the terminal one), and the terminal ``result``, ``error``, ``last`` and ``end``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from workers.protocol import (
    CANCELLED,
    CLIENT_TOO_SLOW,
    PERMISSION_DENIED,
    TIMED_OUT,
    UNAVAILABLE,
    TaskHeader,
    error_frame,
    internal_error,
    response,
)
from workers.signals import emit, executor_request_exception, executor_request_stop, stream_chunks

from .deliveries import Handle, Pending, call_key
from .overload import InFlight
from .retry import policy as retry_policy

if TYPE_CHECKING:
    from .extension import Gateway

log = logging.getLogger("genapi.gateway")

#: outcomes a worker produced; the others come from the gateway itself
FROM_WORKER = frozenset({"result", "error", "last", "end", "rejected"})
#: what ``executor.request.stop`` (and the metrics' ``outcome`` label) calls each kind
OUTCOME_NAMES = {"result": "ok", "last": "ok", "end": "ok", "error": "error", "rejected": "rejected"}


@dataclass(frozen=True)
class Outcome:
    """How a call ended.

    ``kind``: ``result``, ``error``, ``last``, ``end``, ``rejected`` (a before hook or a
    permission callback refused it; ``error`` is the client's message) from the worker; ``timeout``,
    ``lost`` (its worker died), ``cancelled``, ``disconnected``, ``draining``,
    ``dispatch_failed``, ``no_live_worker`` (a retry found none), ``slow_client``.
    """

    kind: str
    data: Any = None
    error: str | None = None
    node: str | None = None
    #: an ``error`` that is an exception the function did not mean to raise (breakers count it)
    unexpected: bool = False

    @property
    def failed(self) -> bool:
        return self.kind not in ("result", "last", "end")


class AfterCall(Protocol):
    """A hook every ended call passes through before its terminal frame is sent."""

    def after_call(self, gateway: Gateway, pending: Pending, outcome: Outcome) -> bool:
        """Return True to take the call over (no terminal frame now), e.g. to retry it."""


def terminal_frame(pending: Pending, outcome: Outcome, detail_error: bool) -> dict | None:
    """The frame that ends the call for its client (``None``: nothing is sent)."""
    request_id, stream = pending.request_id, pending.response_type == "stream"
    kind = outcome.kind
    if kind == "result":
        return response(request_id, result=outcome.data, success=True)
    if kind == "last":
        return response(request_id, result=outcome.data, success=True, is_async=True)
    if kind == "end" or (kind == "cancelled" and stream):
        return response(request_id, success=True, is_async=True)
    if kind == "error":
        return error_frame(request_id, internal_error(outcome.error, detail_error))
    if kind == "rejected":
        return error_frame(request_id, outcome.error or PERMISSION_DENIED)
    if kind == "timeout":
        return error_frame(request_id, TIMED_OUT, can_retry=True)
    if kind == "cancelled":
        return error_frame(request_id, CANCELLED)
    if kind == "slow_client":
        return error_frame(request_id, CLIENT_TOO_SLOW)
    if kind == "disconnected":
        return None
    return error_frame(request_id, UNAVAILABLE, can_retry=True)  # lost, draining, dispatch failed…


class Replies:
    """Starts calls, turns replies into frames, and settles every call exactly once."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.table = gateway.deliveries
        #: calls started on each connection and not settled yet (``GENAPI_MAX_IN_FLIGHT``)
        self.in_flight = InFlight()
        #: the after-call hooks, in order (breakers count every attempt, then retry may take it over)
        self.after_call: list[AfterCall] = []
        self.handlers: dict[str, Callable[[Pending, dict], None]] = {
            "started": self._started,
            "chunks": self._chunks,
            "result": self._final,
            "error": self._final,
            "last": self._final,
            "end": self._final,
            "rejected": self._final,
        }

    # ------------------------------------------------------------------ starting

    def start(self, pending: Pending) -> None:
        """Register the call and dispatch its first attempt."""
        if pending.response_type in ("async", "stream"):
            pending.conn.calls[call_key(pending.request_id)] = pending
        self.in_flight.add(pending.conn)
        self.table.add(pending)
        self.dispatch(pending, pending.queue)

    def dispatch(self, pending: Pending, queue: str) -> None:
        """Send the current attempt to ``queue``; a broker failure settles the call."""
        header = TaskHeader(reply=self.gateway.reply_channel, ref=pending.ref, deadline=_wall_deadline(pending),
                            mode=pending.response_type, info=pending.info,
                            track=pending.node is None and needs_tracking(pending.config),
                            request_id=pending.request_id, trace=self._trace(pending))
        try:
            self._send(pending, queue, header)
        except Exception:
            log.exception("could not send %s to %s", pending.task, queue)
            self.settle(pending, Outcome("dispatch_failed"))
            return
        if self.table.get(pending.ref) is not pending and pending.response_type in ("async", "stream"):
            self.gateway.cancel_remote(pending)  # it ended (a cancel, a disconnect) while being sent

    def fire_and_forget(self, pending: Pending) -> None:
        """A ``none`` call: sent, never registered, never answered (its worker retries it)."""
        rule = retry_policy(pending.config.retry)
        header = TaskHeader(reply=None, ref=None, deadline=_wall_deadline(pending), mode="none", info=pending.info,
                            retries=rule[1] if rule else 0, request_id=pending.request_id, trace=self._trace(pending))
        self._send(pending, pending.queue, header)

    def _trace(self, pending: Pending) -> dict | None:
        return self.gateway.tracing.carrier(pending.span) if pending.span is not None else None

    def _send(self, pending: Pending, queue: str, header: TaskHeader) -> None:
        timeout = None if header.deadline is None else max(header.deadline - time.time(), 0.001)
        handle = self.gateway.dispatcher.send(pending.task, pending.args, queue, timeout, header.to_json(),
                                              sensitive=pending.config.sensitive)
        pending.handle = Handle(handle.task_id, handle.queue, pending.node) if handle is not None else None

    def retry_later(self, pending: Pending, delay: float, same: str | None, avoid: set[str]) -> None:
        """Enter the call again under a new ref (a late reply of the failed attempt then
        finds nothing) and dispatch it after ``delay``; meanwhile it can still time out,
        be cancelled or lose its client like any call."""
        pending.node = pending.handle = None
        ref = self.table.add(pending)
        timer = threading.Timer(delay, self._redispatch, args=(pending, ref, same, avoid))
        timer.daemon = True
        timer.start()

    def _redispatch(self, pending: Pending, ref: str, same: str | None, avoid: set[str]) -> None:
        with pending.lock:  # a cancel meanwhile waits, then finds the handle and stops the worker
            if self.table.get(ref) is not pending:
                return  # it ended while waiting
            serving = self.gateway.cache.snapshot.nodes_for_task(pending.task)
            breakers = self.gateway.breakers
            if breakers is not None and breakers.views:
                tripped = breakers.open_workers(pending.config.service)
                serving = [node for node in serving if node.node_id not in tripped]
            choice = self.gateway.selector.for_retry(serving, same, avoid)
            if choice is None:
                self.settle(pending, Outcome("no_live_worker"))
                return
            pending.node = choice.node
            self.dispatch(pending, choice.queue)

    # ------------------------------------------------------------------ replies

    def on_message(self, data: bytes) -> None:
        """A message on this process's reply channel."""
        message = json.loads(data)
        pending = self.table.get(message.get("ref"))
        if pending is None:
            return  # answered already (timed out, cancelled, retried), or the client left
        handler = self.handlers.get(message.get("type"))
        if handler is None:
            log.warning("unknown reply type %r", message.get("type"))
            return
        handler(pending, message)

    def _started(self, pending: Pending, message: dict) -> None:
        pending.node = message.get("node")

    def _chunks(self, pending: Pending, message: dict) -> None:
        request_id, conn = pending.request_id, pending.conn
        with pending.lock:
            if self.table.get(pending.ref) is not pending:
                return  # the call ended: nothing may follow its terminal frame
            sent = pending.delivered
            for chunk in message.get("data") or ():
                if not conn.send(response(request_id, result=chunk, success=True, is_async=True, has_more=True),
                                 terminal=False):
                    break
                pending.delivered += 1
            else:
                if stream_chunks.receivers:
                    emit(stream_chunks, self.gateway, count=pending.delivered - sent, request_id=request_id,
                         service=pending.config.service, request_type=pending.config.request_type)
                time.sleep(0)  # under gevent: let the connection's writer send them before more come
                return
        self.settle(pending, Outcome("slow_client", node=message.get("node")))

    def _final(self, pending: Pending, message: dict) -> None:
        outcome = Outcome(message["type"], data=message.get("data"), error=message.get("error"),
                          node=message.get("node"), unexpected=bool(message.get("unexpected")))
        if outcome.kind == "result" and self.gateway.hooks.after:
            # the gateway's after hooks may take their time: never on the reply listener
            threading.Thread(target=self._after_hooks, args=(pending, outcome), daemon=True,
                             name="genapi-after-hooks").start()
            return
        self.settle(pending, outcome)

    def _after_hooks(self, pending: Pending, outcome: Outcome) -> None:
        data = self.gateway.hooks.run_after(pending.info or {}, outcome.data)
        self.settle(pending, replace(outcome, data=data))

    # ------------------------------------------------------------------ ending

    def settle(self, pending: Pending, outcome: Outcome) -> bool:
        """End the call with ``outcome``: once, whoever calls. Returns whether this call did."""
        with pending.lock:
            if self.table.take(pending.ref) is not pending:
                return False
            if outcome.node is not None:
                pending.node = outcome.node
            for hook in self.after_call:
                try:
                    if hook.after_call(self.gateway, pending, outcome):
                        return True  # the hook carries the call on (a retry)
                except Exception:
                    log.exception("after-call hook %r failed", hook)
            self.in_flight.remove(pending.conn)
            if pending.response_type in ("async", "stream"):
                key = call_key(pending.request_id)
                if pending.conn.calls.get(key) is pending:
                    del pending.conn.calls[key]
            frame = terminal_frame(pending, outcome, self.gateway.detail_error)
            if frame is not None:
                pending.conn.send(frame)
        if executor_request_stop.receivers or executor_request_exception.receivers:
            self._stopped(pending, outcome, frame)
        if pending.span is not None:
            self.gateway.tracing.end(pending.span, OUTCOME_NAMES.get(outcome.kind, outcome.kind),
                                     frame["error"] if frame is not None else None)
        if outcome.kind in ("cancelled", "disconnected", "slow_client", "draining") and pending.handle is not None \
                and pending.response_type in ("async", "stream"):
            self.gateway.cancel_remote(pending)  # a sync call's worker just answers into the void
        return True

    def _stopped(self, pending: Pending, outcome: Outcome, frame: dict | None) -> None:
        config, identity = pending.config, pending.conn.identity
        name = OUTCOME_NAMES.get(outcome.kind, outcome.kind)
        fields = dict(duration=time.monotonic() - pending.started, request_id=pending.request_id,
                      service=config.service, request_type=config.request_type, version=config.version,
                      user_id=identity.user_id if identity else None, mode=pending.response_type,
                      outcome=name, node=pending.node)
        if outcome.unexpected and outcome.kind == "error":  # the function raised: "an exception escaped"
            emit(executor_request_exception, self.gateway, **fields, kind="error", reason=outcome.error,
                 stacktrace=None)
        else:
            emit(executor_request_stop, self.gateway, **fields, success=name == "ok",
                 **{"async": pending.response_type != "sync"}, error=frame["error"] if frame is not None else None)

    def timed_out(self, pending: Pending) -> None:
        """The sweeper's callback: the call's deadline passed."""
        self.settle(pending, Outcome("timeout"))

    def lost_workers(self, live: Callable[[str], bool]) -> None:
        """Calls whose worker is known and no longer alive end as ``lost``; calls with no
        deadline whose task no live worker can run end too (they would wait forever)."""
        for pending in self.table.on_nodes():
            if not live(pending.node):
                self.settle(pending, Outcome("lost"))
        for pending in self.table.without_deadline():
            if pending.node is None and not self.gateway.cache.snapshot.nodes_for_task(pending.task):
                self.settle(pending, Outcome("lost"))

    def disconnected(self, conn: Any) -> None:
        """The client left: its running calls end (no frame), and their workers are told."""
        for pending in self.table.of_connection(conn):
            self.settle(pending, Outcome("disconnected"))
        conn.calls.clear()

    def drain(self) -> None:
        """The gateway is stopping: every call still running gets ``unavailable``."""
        for pending in self.table.entries():
            self.settle(pending, Outcome("draining"))


def _wall_deadline(pending: Pending) -> float | None:
    """The call's deadline on the wall clock, which the worker compares with its own."""
    return None if pending.deadline is None else time.time() + (pending.deadline - time.monotonic())


def needs_tracking(config: Any) -> bool:
    """Should the worker report ``started``? When the call may have to be answered before
    its deadline if its worker dies: it can be retried, it has no deadline, or it streams."""
    return bool(config.retry) or config.timeout is None or config.response_type == "stream"

"""The request pipeline: one ordered list of small steps, each testable on its own.

A step is ``step(gateway, call) -> None``. It reads and fills the :class:`Call`, and stops
the request by raising :class:`~gateway_app.errors.Rejected` (answered with an error
frame) or :class:`Answered` (it already answered). Later features — rate limits, hooks,
breakers — are new steps in :data:`STEPS`, in the order of PRODUCT.md.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workers.argtypes import ArgumentError, validate_args
from workers.funconfig import FunConfig
from workers.protocol import (
    AUTH_REQUIRED,
    INTERNAL_ERROR,
    PERMISSION_DENIED,
    UNAVAILABLE,
    UNKNOWN_REQUEST_ID,
    direct_queue,
    error_frame,
    invalid_arguments,
    response,
    service_queue,
)

from . import builtins, decoding, permissions, versions
from .deliveries import Pending
from .errors import Rejected

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
    queue: str | None = None

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
            call.payload = decoding.parse(call.raw, gateway.settings.max_payload_bytes)
        except Rejected:
            pass  # the request id is unknown; the answer is the same
        raise Rejected(AUTH_REQUIRED)


def parse(gateway: Gateway, call: Call) -> None:
    """Size limit on the raw frame, then JSON."""
    call.payload = decoding.parse(call.raw, gateway.settings.max_payload_bytes)


def decode(gateway: Gateway, call: Call) -> None:
    """Required fields and their types."""
    call.request = decoding.decode(call.payload)


def refuse_when_draining(gateway: Gateway, call: Call) -> None:
    """The gateway is shutting down: the client should retry on another one."""
    if gateway.draining:
        raise Rejected(UNAVAILABLE, can_retry=True)


def answer_builtin(gateway: Gateway, call: Call) -> None:
    """The ``gateway`` service is answered here, without a worker."""
    if call.request.service == builtins.SERVICE:
        result = builtins.answer(gateway, call.conn, call.request)
        call.conn.send(response(call.request_id, result=result, success=True))
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
        raise Rejected(PERMISSION_DENIED)


def validate(gateway: Gateway, call: Call) -> None:
    """Arguments against ``arg_types``; defaults filled in."""
    try:
        call.args = validate_args(call.config.arg_types, call.request.args)
    except ArgumentError as exc:
        raise Rejected(invalid_arguments(str(exc))) from None


def select_node(gateway: Gateway, call: Call) -> None:
    """Route to the service queue, or to one worker's direct queue when only some serve it.

    No live worker serves the task: ``Service temporarily unavailable`` at once, instead of
    a task waiting in a queue nobody reads.
    """
    snapshot = gateway.cache.snapshot
    config = call.config
    serving = snapshot.nodes_for_task(config.task_name)
    if not serving:
        raise Rejected(UNAVAILABLE, can_retry=True)
    if len(serving) == len(snapshot.nodes_for_service(config.service)):
        call.queue = service_queue(config.service)
    else:  # a rolling deploy: not every worker on the service queue knows this version
        call.queue = direct_queue(random.choice(serving).node_id)


def request_info(call: Call) -> dict:
    """What a ``request_info=True`` function receives: identity from the session only; the
    token's device id wins over the request's."""
    identity, request = call.conn.identity, call.request
    return {
        "request_id": request.request_id,
        "user_id": identity.user_id if identity else None,
        "device_id": (identity.device_id if identity else None) or request.device_id,
        "roles": list(identity.roles) if identity else [],
    }


def dispatch(gateway: Gateway, call: Call) -> None:
    """Send the task; the reply comes back through the listener."""
    config, request, conn = call.config, call.request, call.conn
    if config.response_type == "stream":
        raise Rejected("unsupported response type: stream")
    timeout_s = None if config.timeout is None else config.timeout / 1000
    meta: dict[str, Any] = {"reply": None, "ref": None,
                            "deadline": None if timeout_s is None else time.time() + timeout_s}
    if config.request_info:
        meta["info"] = request_info(call)
    ref = None
    if config.response_type != "none":
        if not gateway.listening:  # the reply would be published to nobody
            raise Rejected(UNAVAILABLE, can_retry=True)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        ref = gateway.deliveries.add(Pending(conn, request.request_id, config.response_type, deadline,
                                             task=config.task_name))
        meta["reply"], meta["ref"] = gateway.reply_channel, ref
        if config.response_type == "async":
            conn.send(response(request.request_id, success=True, is_async=True))
    try:
        gateway.dispatcher.send(config.task_name, call.args, call.queue, timeout_s, meta)
    except Exception:
        log.exception("could not send %s to %s", config.task_name, call.queue)
        if ref is None or gateway.deliveries.take(ref) is not None:
            raise Rejected(UNAVAILABLE, can_retry=True) from None
        raise Answered from None  # the deadline already answered it


#: The order every request goes through.
STEPS: list[Step] = [authenticate, parse, decode, refuse_when_draining, answer_builtin, resolve, authorize,
                     validate, select_node, dispatch]


def run(gateway: Gateway, conn: Connection, raw: str | bytes) -> None:
    """Run one frame through the steps; every failure becomes one error frame."""
    call = Call(conn, raw)
    try:
        for step in gateway.steps:
            step(gateway, call)
    except Rejected as rejected:  # found before anything ran: answered in every mode
        conn.send(error_frame(call.request_id, rejected.error, rejected.can_retry))
    except Answered:
        pass
    except Exception:
        log.exception("unexpected error in the pipeline")
        conn.send(error_frame(call.request_id, INTERNAL_ERROR))

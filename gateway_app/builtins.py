"""The built-in ``gateway`` service, answered by the gateway itself.

* ``ping`` → ``"pong"``
* ``functions`` → the functions this caller may call, with their argument schemas.
* ``cancel {request_id}`` → stops a running async call or stream of this connection: the
  cancelled request gets its terminal frame first (a stream its end frame, an async call
  ``Request cancelled``), then the cancel itself answers ``{"cancelled": request_id}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import catalogue, errors
from .decoding import Request
from .deliveries import call_key
from .replies import Outcome

if TYPE_CHECKING:
    from .connection import Connection
    from .extension import Gateway

SERVICE = "gateway"


def ping(gateway: Gateway, conn: Connection, request: Request) -> Any:
    return "pong"


def functions(gateway: Gateway, conn: Connection, request: Request) -> Any:
    """Every enabled function this caller passes ``check_permission`` for, with its JSON
    Schema (:mod:`gateway_app.catalogue`)."""
    return catalogue.listing(gateway.cache.snapshot, conn.identity)


def cancel(gateway: Gateway, conn: Connection, request: Request) -> Any:
    """End a running async call or stream of this connection, and stop its worker."""
    if "request_id" not in request.args:
        raise errors.invalid("cancel needs args.request_id, the id of the request to stop")
    target = request.args["request_id"]
    pending = conn.calls.get(call_key(target))
    if pending is None or not gateway.replies.settle(pending, Outcome("cancelled")):
        raise errors.nothing_to_cancel(target)
    return {"cancelled": target}


HANDLERS = {"ping": ping, "functions": functions, "cancel": cancel}


def answer(gateway: Gateway, conn: Connection, request: Request) -> Any:
    handler = HANDLERS.get(request.request_type)
    if handler is None:
        raise errors.unsupported(request.request_type, request.version)
    return handler(gateway, conn, request)

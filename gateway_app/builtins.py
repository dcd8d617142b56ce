"""The built-in ``gateway`` service, answered by the gateway itself.

* ``ping`` → ``"pong"``
* ``functions`` → the functions this caller may call, with their argument schemas.
* ``cancel {request_id}`` → stops a running async call or stream of this connection: the
  cancelled request gets its terminal frame first (a stream its end frame, an async call
  ``Request cancelled``), then the cancel itself answers ``{"cancelled": request_id}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors, permissions, versions
from .decoding import Request
from .deliveries import call_key
from .errors import Rejected
from .replies import Outcome

if TYPE_CHECKING:
    from .connection import Connection
    from .extension import Gateway

SERVICE = "gateway"


def ping(gateway: Gateway, conn: Connection, request: Request) -> Any:
    return "pong"


def functions(gateway: Gateway, conn: Connection, request: Request) -> Any:
    """Every enabled function this caller passes ``check_permission`` for."""
    snapshot = gateway.cache.snapshot
    listing = []
    for (service, request_type), by_version in sorted(snapshot.functions.items()):
        try:
            latest = versions.resolve(by_version, request_type, None)
        except Rejected:
            continue  # every version disabled
        for config in sorted(by_version.values(), key=lambda c: versions.semver_key(c.version or "")):
            if config.disabled or not permissions.allowed(config, conn.identity, None):
                continue
            listing.append({
                "service": service,
                "request_type": request_type,
                "version": config.version,
                "latest": config is latest,
                "response_type": config.response_type,
                "timeout": "infinity" if config.timeout is None else config.timeout,
                "arg_types": {name: spec.to_json() for name, spec in config.arg_types.items()},
                "arg_orders": config.arg_orders if isinstance(config.arg_orders, str) else list(config.arg_orders),
                "available": bool(snapshot.nodes_for_task(config.task_name)),
            })
    return listing


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

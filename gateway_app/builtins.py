"""The built-in ``gateway`` service, answered by the gateway itself.

* ``ping`` → ``"pong"``
* ``functions`` → the functions this caller may call, with their argument schemas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.protocol import unsupported_function

from . import permissions, versions
from .decoding import Request
from .errors import Rejected

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


HANDLERS = {"ping": ping, "functions": functions}


def answer(gateway: Gateway, conn: Connection, request: Request) -> Any:
    handler = HANDLERS.get(request.request_type)
    if handler is None:
        raise Rejected(unsupported_function(request.request_type, request.version))
    return handler(gateway, conn, request)

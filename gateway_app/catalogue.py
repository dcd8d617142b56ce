"""The function catalogue: what a caller may call, with each function's JSON Schema.

One listing, two doors: the built-in ``gateway/functions`` request and ``GET
/functions.json`` (same caller rules as the WebSocket: the authenticator decides who is
calling; anonymous callers only where the public endpoint is enabled). Each entry describes
one enabled version the caller passes ``check_permission`` for; built-in services are not
listed. ``args_schema`` is built once per config (:attr:`FunConfig.args_schema`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Response, request
from werkzeug.datastructures import ImmutableMultiDict

from workers.funconfig import FunConfig
from workers.protocol import AUTH_REQUIRED, encode

from . import permissions, versions
from .auth import Identity
from .cache import Snapshot
from .errors import Rejected

if TYPE_CHECKING:
    from .extension import Gateway

log = logging.getLogger("genapi.gateway")


def entry(config: FunConfig, latest: bool, available: bool) -> dict:
    """One function version as the catalogue shows it."""
    return {
        "service": config.service,
        "request_type": config.request_type,
        "version": config.version,
        "latest": latest,
        "response_type": config.response_type,
        "timeout": "infinity" if config.timeout is None else config.timeout,
        "arg_types": {name: spec.to_json() for name, spec in config.arg_types.items()},
        "arg_orders": config.arg_orders if isinstance(config.arg_orders, str) else list(config.arg_orders),
        "args_schema": config.args_schema,
        "description": config.description,
        "available": available,
    }


def listing(snapshot: Snapshot, identity: Identity | None) -> list[dict]:
    """Every enabled function version this caller passes ``check_permission`` for, sorted by
    service, request type and version."""
    out = []
    for (_service, request_type), by_version in sorted(snapshot.functions.items()):
        try:
            latest = versions.resolve(by_version, request_type, None)
        except Rejected:
            continue  # every version disabled
        for config in sorted(by_version.values(), key=lambda c: versions.semver_key(c.version or "")):
            if config.disabled or not permissions.allowed(config, identity, None):
                continue
            out.append(entry(config, config is latest, bool(snapshot.nodes_for_task(config.task_name))))
    return out


class _BearerAsToken:
    """The HTTP request as the authenticator sees it, with an ``Authorization: Bearer``
    token standing in for a missing ``?token=`` (everything else is the request's)."""

    def __init__(self, req: Any, token: str) -> None:
        self._request = req
        self.args = ImmutableMultiDict([*req.args.items(multi=True), ("token", token)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def _bearer(req: Any) -> str | None:
    scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def http_identity(gateway: Gateway, req: Any) -> Identity | None:
    """Who makes this HTTP request, by the gateway's authenticator (``None``: anonymous)."""
    token = _bearer(req)
    if token and "token" not in req.args:
        req = _BearerAsToken(req, token)
    try:
        return gateway.authenticator(req, gateway.settings)
    except Exception:
        log.exception("authenticator failed; treating the request as anonymous")
        return None


def functions_json(gateway: Gateway) -> Response:
    """``GET /functions.json``: the catalogue for this caller, or 401."""
    identity = http_identity(gateway, request)
    if identity is None and not gateway.settings.public_ws:
        body = encode({"error": AUTH_REQUIRED})
        return Response(body, 401, {"WWW-Authenticate": "Bearer"}, mimetype="application/json")
    gateway.start()
    return Response(encode(listing(gateway.cache.snapshot, identity)), mimetype="application/json")

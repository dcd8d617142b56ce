"""The admin HTTP API under ``/admin/`` (off until ``GENAPI_ADMIN_TOKEN`` is set).

Every request needs ``Authorization: Bearer <GENAPI_ADMIN_TOKEN>`` (compared in constant
time). The sensitive actions of reference §13.1 also need their name in
``GENAPI_ADMIN_ACTIONS`` (default: none — fail closed; refusals are logged).

* ``GET /admin/functions?service=`` — what ``genapi admin list --json`` prints
* ``POST /admin/functions/disable|enable|delete`` — ``{service, request_type, version?}``
* ``GET /admin/failed-configs?service=&source=&limit=``, ``GET /admin/pushed-services``,
  ``GET /admin/verify?service=&config_version=``, ``GET /admin/cache-status``
* ``GET /admin/status`` — what the gateway process that answers sees
* ``POST /admin/pull`` — ``{service?}``: a forced pull
* ``POST /admin/push`` — a PushConfig; also needs ``push_config``
* ``POST /admin/detail-error`` — ``{enabled: bool}``; also needs ``change_detail_error``
* ``GET /admin/rate-limits`` — the limits in force; ``PUT`` (a partial config) and
  ``DELETE`` (back to the settings) also need ``update_rate_limit_config``
* ``GET /admin/rate-limits/status?key=&service=&request_type=&key_type=``,
  ``POST /admin/rate-limits/reset`` — ``{key, service?, request_type?, key_type?}``
* ``GET /admin/pool`` — breakers, live workers, queue lengths (``genapi pool-status``)
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Request, jsonify, request
from limits.errors import StorageError

from .admin import Admin, UnknownFunction
from .failed_configs import SOURCES
from .policy_admin import PolicyAdmin
from .puller import request_pull

if TYPE_CHECKING:
    from .extension import Gateway

log = logging.getLogger("genapi.admin")


def bearer_matches(req: Request, token: str | None) -> bool:
    """Does the request carry ``Authorization: Bearer <token>``? Constant-time comparison."""
    if not token:
        return False
    scheme, _, given = (req.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


def _error(status: int, message: str, **headers: str):
    response = jsonify({"error": message})
    response.status_code = status
    response.headers.update(headers)
    return response


def _body() -> dict:
    """The JSON body; query parameters fill in what it does not give (``?service=…``)."""
    data = request.get_json(silent=True)
    if data is None and request.content_length:
        raise ValueError("the body must be JSON")
    if data is not None and not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return {**request.args.to_dict(), **(data or {})}


def _function_target(data: dict) -> tuple[str, str, str | None]:
    service, request_type, version = data.get("service"), data.get("request_type"), data.get("version")
    if not isinstance(service, str) or not service or not isinstance(request_type, str) or not request_type:
        raise ValueError("give 'service' and 'request_type' (and optionally 'version')")
    if version is not None and not isinstance(version, str):
        raise ValueError("'version' must be a string")
    return service, request_type, version


def _required(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"give {name!r} (a non-empty string)")
    return value


def admin_blueprint(gateway: Gateway) -> Blueprint:
    """The ``/admin`` routes of one gateway (registered only when an admin token is set)."""
    settings = gateway.settings
    admin = Admin(gateway.redis, gateway.keys)
    policies = PolicyAdmin(gateway.redis, gateway.keys, settings, own=True)
    bp = Blueprint("genapi_admin", __name__, url_prefix="/admin")

    @bp.before_request
    def _authenticate():
        if not bearer_matches(request, settings.admin_token):
            log.warning("admin: refused %s %s from %s: missing or wrong bearer token", request.method,
                        request.path, request.remote_addr)
            return _error(401, "admin API: missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        return None

    def sensitive(action: str) -> Callable:
        def decorate(view: Callable) -> Callable:
            @wraps(view)
            def guarded(*args: Any, **kwargs: Any):
                if action not in settings.admin_actions:
                    log.warning("admin: refused %s from %s: action %r is not in GENAPI_ADMIN_ACTIONS", request.path,
                                request.remote_addr, action)
                    return _error(403, f"admin action {action!r} is not allowed (add it to GENAPI_ADMIN_ACTIONS)")
                log.info("admin: allowed action %r from %s", action, request.remote_addr)
                return view(*args, **kwargs)
            return guarded
        return decorate

    @bp.errorhandler(ValueError)
    def _bad_request(exc: ValueError):
        return _error(400, str(exc))

    @bp.errorhandler(StorageError)
    def _limiter_down(exc: StorageError):
        return _error(503, f"the rate limiter's Redis is unavailable: {exc}")

    @bp.errorhandler(UnknownFunction)
    def _unknown(exc: UnknownFunction):
        return _error(404, str(exc))

    @bp.get("/functions")
    def functions():
        return jsonify(admin.list_functions(request.args.get("service") or None))

    @bp.post("/functions/<action>")
    def change(action: str):
        target = _function_target(_body())
        if action in ("disable", "enable"):
            changed = admin.set_disabled(*target, disabled=action == "disable")
        elif action == "delete":
            changed = admin.delete(*target)
        else:
            return _error(404, f"unknown action {action!r} (disable, enable or delete)")
        log.info("admin: %s %s from %s", action, ", ".join(f"{c['service']}.{c['request_type']}@{c['version']}"
                                                           for c in changed), request.remote_addr)
        return jsonify({"changed": changed})

    @bp.get("/failed-configs")
    def failed_configs():
        source = request.args.get("source") or None
        if source is not None and source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}")
        try:
            limit = int(request.args.get("limit", 100))
        except ValueError:
            raise ValueError("limit must be an integer") from None
        return jsonify(admin.failed.list(source=source, service=request.args.get("service") or None, limit=limit))

    @bp.get("/pushed-services")
    def pushed_services():
        return jsonify(admin.pushed_services())

    @bp.get("/verify")
    def verify():
        service, version = request.args.get("service"), request.args.get("config_version")
        if not service or not version:
            raise ValueError("give ?service=...&config_version=...")
        return jsonify(admin.verify(service, version))

    @bp.get("/cache-status")
    def cache_status():
        return jsonify(admin.cache_status())

    @bp.get("/status")
    def status():
        return jsonify(gateway.process_status())

    @bp.post("/pull")
    def pull():
        data = _body()
        service = data.get("service")
        if service is not None and (not isinstance(service, str) or not service):
            raise ValueError("'service' must be a service name")
        request_pull(gateway.redis, gateway.keys, [service] if service else None)
        return jsonify({"requested": service or "all"}), 202

    @bp.post("/push")
    @sensitive("push_config")
    def push():
        data = _body()
        outcome = gateway.receiver.accept(data, source="push", force=data.get("force") is True)
        status = 200 if outcome["status"] in ("accepted", "skipped") else \
            403 if outcome.get("error") == "invalid_push_token" else 400
        return jsonify(outcome), status

    @bp.get("/rate-limits")
    def rate_limits():
        return jsonify(policies.rate_limit_config())

    @bp.put("/rate-limits")
    @sensitive("update_rate_limit_config")
    def set_rate_limits():
        return jsonify(policies.set_rate_limits(_body()))

    @bp.delete("/rate-limits")
    @sensitive("update_rate_limit_config")
    def clear_rate_limits():
        return jsonify(policies.clear_rate_limits())

    @bp.get("/rate-limits/status")
    def rate_limit_status():
        args = request.args
        return jsonify(policies.rate_limit_status(_required(args.get("key"), "key"), args.get("service") or None,
                                                  args.get("request_type") or None, args.get("key_type") or None))

    @bp.post("/rate-limits/reset")
    def reset_rate_limit():
        data = _body()
        return jsonify(policies.reset_rate_limit(_required(data.get("key"), "key"), data.get("service"),
                                                 data.get("request_type"), data.get("key_type")))

    @bp.get("/pool")
    def pool():
        return jsonify(policies.pool_status())

    @bp.post("/detail-error")
    @sensitive("change_detail_error")
    def detail_error():
        enabled = _body().get("enabled")
        if not isinstance(enabled, bool):
            raise ValueError("give {\"enabled\": true} or {\"enabled\": false}")
        return jsonify(admin.set_detail_error(enabled))

    return bp

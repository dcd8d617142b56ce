"""``genapi call-flow``: which config, workers, policies and steps a call would go through
(reference §14.4), as a plain dict. It resolves the version as the gateway does and reads
the registry, the limits and the breakers through the same code the gateway uses."""

from __future__ import annotations

from typing import Any

from workers.funconfig import FunConfig
from workers.protocol import service_queue
from workers.settings import Settings

from . import retry, versions
from .admin import Admin
from .cache import Snapshot
from .diagnostics import snapshot_of
from .errors import Rejected
from .policy_admin import PolicyAdmin

_NODE_MODES = {
    "any": "the service's shared queue: the broker hands the task to a free worker",
    "random": "a random live worker's own queue",
    "round_robin": "live workers in turn (per gateway process and function)",
    "hash": "a worker chosen by a hash of the request id",
    "first": "the longest-running live worker (hot standby)",
    "last": "the most recently started live worker",
}
_RESPONSES = {
    "sync": "one frame with the result or the error",
    "async": "an ack at once, then one frame with the result or the error",
    "stream": "an ack (result \"init\"), one frame per chunk, then one terminal frame",
    "none": "nothing: the call is sent and forgotten",
}


def node_mode(mode: Any) -> str:
    if isinstance(mode, dict):
        (kind, key), = mode.items()
        return (f"a worker chosen by a hash of argument {key!r}" if kind == "hash" else
                f"the worker remembered for the value of {key!r} (shared by every gateway, with a TTL)")
    return _NODE_MODES.get(mode, f"the worker the selector {mode} returns")


def permission(config: FunConfig) -> dict:
    """How the caller is checked (reference §14.4's strategies, ``callback`` added)."""
    mode = config.check_permission
    if config.permission_callback:
        return {"strategy": "callback", "callback": config.permission_callback, "checked_on": "worker",
                "description": f"{config.permission_callback} runs on the worker before the function; only True "
                               "allows; check_permission is not applied"}
    if mode is False:
        return {"strategy": "none", "description": "no check: anyone who may call"}
    if mode == "any_authenticated":
        return {"strategy": "authenticated", "checked_on": "gateway",
                "description": "any signed-in caller (a user id in the session)"}
    if "arg" in mode:
        return {"strategy": "arg_based", "field": mode["arg"], "checked_on": "gateway",
                "description": f"the argument {mode['arg']!r} must equal the caller's user id"}
    roles = mode["role"]
    return {"strategy": "role_based", "roles": roles, "checked_on": "gateway",
            "description": f"the session's roles must include one of {', '.join(roles)}" if roles else
            "nobody (an empty role list)"}


def hook(spec: Any, when: str, timeout_ms: int) -> dict:
    if spec is None:
        return {"configured": False, "description": f"no {when} hook"}
    target, extra = (spec, []) if isinstance(spec, str) else (spec["callable"], spec.get("args") or [])
    return {"configured": True, "callable": target, "args": 2 + len(extra), "extra_args": extra,
            "description": f"{target} runs on the worker {when} the function, within {timeout_ms} ms"}


def retry_policy(config: FunConfig) -> dict:
    rule = retry.policy(config.retry)
    if rule is None or rule[1] <= 0:
        return {"configured": False, "description": "No retry"}
    mode, attempts = rule
    where = "the same worker" if mode == "same_node" else "another live worker when there is one"
    who = "the worker itself" if config.response_type == "none" else "the gateway"
    return {"configured": True, "mode": mode, "attempts": attempts,
            "description": f"up to {attempts} more attempt(s) on {where} after an error result or a lost worker, "
                           f"within the call's timeout (retried by {who})"}


def _limits_text(limits: list[dict]) -> str:
    return "; ".join(f"{limit.get('service', 'global')}{'.' + limit['request_type'] if 'service' in limit else ''}"
                     f" {limit['key']} {limit['max_requests']} per {limit['window_ms']} ms" for limit in limits)


def steps(config: FunConfig, details: dict, max_payload_bytes: int) -> list[dict]:
    """The ordered phases a call goes through (``gateway_app.pipeline.build_steps``, then the
    worker, then the reply side), each described for this function."""
    limits = details["rate_limit"]
    applying = limits["global"] + limits["api"]
    breaker = details["breakers"]
    gateway_hooks = details["hooks"]["gateway"]
    arguments = (f"{len(config.arg_types)} declared argument(s) checked against arg_types, defaults filled in"
                 if config.arg_types else "no arguments declared: any sent are ignored")
    serving = [n["node_id"] for n in details["nodes"] if n["live"] and not n["draining"]]
    worker = [{"phase": "hooks_before", "desc": details["hooks"]["before_execute"]["description"]}]
    if config.permission_callback:
        worker.append({"phase": "permission_callback", "desc": details["permission"]["description"]})
    worker += [{"phase": "function", "desc": f"the task {config.task_name}"},
               {"phase": "hooks_after", "desc": details["hooks"]["after_execute"]["description"]}]
    phases = [
        ("authenticate", "the identity fixed at the handshake; none: Authentication required (unless public)"),
        ("parse", f"a JSON object of at most {max_payload_bytes} bytes"),
        ("decode", "service, request_type and request_id present and typed"),
        ("builtins", "not a built-in service (gateway, relay): on to the registry"),
        ("config_lookup", f"{details['resolution']}: {config.task_name}"),
        ("permission", "not checked here: the permission callback decides on the worker (below)"
         if config.permission_callback else details["permission"]["description"]),
        ("rate_limit", "rate limits disabled" if not limits["enabled"] else
         (f"{_limits_text(applying)} (fail_open {str(limits['fail_open']).lower()})" if applying
          else "no limit applies")),
        ("argument_validation", arguments),
        ("gateway_hooks_before", ", ".join(gateway_hooks["before_execute"]) or "none configured"),
        ("breaker", f"service breaker {breaker['service']['state']}" if breaker["enabled"] else "breakers off"),
        ("node_selection", node_mode(config.choose_node_mode) + (f"; {len(serving)} live worker(s) have the task"
                            if serving else "; no live worker has the task: Service temporarily unavailable")),
    ]
    listing = [{"phase": name, "desc": desc} for name, desc in phases]
    timeout = "no timeout" if config.timeout is None else f"timeout {config.timeout} ms"
    listing.append({"phase": "execution", "desc": f"on a worker, {timeout}", "worker": worker})
    if details["retry"]["configured"]:
        listing.append({"phase": "retry", "desc": details["retry"]["description"]})
    after = ", ".join(gateway_hooks["after_execute"]) or "none configured"
    listing.append({"phase": "gateway_hooks_after", "desc": after if config.response_type in ("sync", "async")
                    else f"not applied to {config.response_type} calls"})
    listing.append({"phase": "response", "desc": _RESPONSES[config.response_type]})
    return listing


def _nodes_of(config: FunConfig, snapshot: Snapshot, pushed: dict, breakers: list[dict]) -> list[dict]:
    """Live workers with the task, then workers that pushed the service but are gone."""
    tripped = {b["node"]: b["state"] for b in breakers if b["scope"] == "worker" and b["service"] == config.service}
    live = {n.node_id: n for n in snapshot.live_nodes(lambda n: config.task_name in n.tasks)}
    gone = [node for node in pushed.get(config.service, {}).get("nodes", []) if node not in live]
    return ([{"node_id": node_id, "live": True, "draining": node.draining, "queue": node.queue,
              "breaker": tripped.get(node_id, "closed")} for node_id, node in sorted(live.items())]
            + [{"node_id": node_id, "live": False, "draining": False, "queue": None, "breaker": None}
               for node_id in sorted(gone)])


def call_flow(admin: Admin, policies: PolicyAdmin, settings: Settings, service: str, request_type: str,
              version: str | None = None) -> dict:
    """Which config, nodes and policies a call of ``service.request_type`` would meet.

    The version resolves as the gateway resolves it (no version or ``0.0.0``: the latest
    enabled one; an explicit one: exactly that, and a disabled one is an error). Unknown or
    disabled: ``config`` is None, ``error`` the client's message, one ``config_lookup`` step."""
    version = None if version in (None, "", "0.0.0") else version
    snapshot = snapshot_of(admin, settings)
    by_version = snapshot.versions(service, request_type)
    try:
        config = versions.resolve(by_version, request_type, version)
    except Rejected as rejected:
        known = sorted((v or "" for v in (by_version or {})), key=versions.semver_key)
        return {"service": service, "request_type": request_type, "version": version, "config": None,
                "error": rejected.error, "known_versions": known,
                "steps": [{"phase": "config_lookup", "desc": f"{rejected.error} (registered versions: "
                                                             f"{', '.join(known) or 'none'})"}]}
    limits = policies.rate_limit_config()
    pool = policies.pool_status()
    service_breaker = next((b for b in pool["breakers"] if b["scope"] == "service" and b["service"] == service),
                           {"state": "closed", "failures": 0})
    details = {
        "service": service, "request_type": request_type, "version": config.version,
        "resolution": f"version {version}" if version else "the latest enabled version",
        "config": config.to_json(), "task": config.task_name,
        "nodes": _nodes_of(config, snapshot, admin.pushed_services(), pool["breakers"]),
        "queue": {"name": service_queue(service), "length": pool["services"].get(service, {}).get("queue_length")},
        "response_type": config.response_type, "choose_node_mode": config.choose_node_mode,
        "node_selection": node_mode(config.choose_node_mode),
        "timeout": "infinity" if config.timeout is None else config.timeout,
        "rate_limit": {"enabled": limits["enabled"], "fail_open": limits["fail_open"], "source": limits["source"],
                       "global": limits["global_limits"],
                       "api": [limit for limit in limits["api_limits"]
                               if (limit["service"], limit["request_type"]) == (service, request_type)]},
        "permission": permission(config),
        "hooks": {"before_execute": hook(config.before_execute, "before", config.hook_timeout),
                  "after_execute": hook(config.after_execute, "after", config.hook_timeout),
                  "gateway": {"before_execute": list(settings.before_execute),
                              "after_execute": list(settings.after_execute),
                              "source": "GENAPI_BEFORE_EXECUTE / GENAPI_AFTER_EXECUTE of this environment"}},
        "retry": retry_policy(config),
        "breakers": {"enabled": pool["config"]["enabled"], "config": pool["config"],
                     "service": {"state": service_breaker["state"], "failures": service_breaker["failures"]}},
    }
    details["steps"] = steps(config, details, settings.max_payload_bytes)
    return details

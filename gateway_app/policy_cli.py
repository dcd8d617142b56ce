"""``genapi rl-status|rl-global|rl-config|pool-status`` and ``genapi admin
reset-rate-limit|set-rate-limits``: the original's IEx helpers, on Redis directly.

``--json`` prints what the matching ``/admin/`` endpoint returns; without it, a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .admin_cli import _show, _table, _with_json
from .policy_admin import PolicyAdmin


def _limits_table(limits: list[dict]) -> None:
    _table([{**limit, "scope": f"{limit['service']}.{limit['request_type']}" if "service" in limit else "global"}
            for limit in limits],
           [("scope", "SCOPE"), ("key", "KEY"), ("max_requests", "MAX"), ("window_ms", "WINDOW_MS")])


def cmd_rl_status(admin: PolicyAdmin, args: argparse.Namespace) -> int:
    entries = admin.rate_limit_status(args.key, args.service, args.request_type, args.key_type)
    return _show(args, entries, lambda rows: _table(rows, [
        ("scope", "SCOPE"), ("key_type", "KEY_TYPE"), ("key", "KEY"), ("current_requests", "USED"),
        ("max_requests", "MAX"), ("remaining", "REMAINING"), ("window_ms", "WINDOW_MS"),
        ("retry_after_ms", "RETRY_AFTER_MS")]), empty="no limits in this scope")


def cmd_rl_global(admin: PolicyAdmin, args: argparse.Namespace) -> int:
    return _show(args, admin.global_limits(), _limits_table, empty="no global limits")


def _config_text(config: dict) -> None:
    state = "enabled" if config["enabled"] else "disabled"
    print(f"rate limits {state}, fail_open={str(config['fail_open']).lower()}, "
          f"timeout {config['timeout_ms']} ms (from {config['source']})")
    limits = config["global_limits"] + config["api_limits"]
    if limits:
        _limits_table(limits)
    else:
        print("no limits configured")


def cmd_rl_config(admin: PolicyAdmin, args: argparse.Namespace) -> int:
    return _show(args, admin.rate_limit_config(), _config_text)


def cmd_reset(admin: PolicyAdmin, args: argparse.Namespace) -> int:
    result = admin.reset_rate_limit(args.key, args.service, args.request_type, args.key_type)
    return _show(args, result, lambda r: print(f"reset {r['reset']} limit(s) of {r['key']} ({r['scope']})"))


def _changes(text: str) -> Any:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def cmd_set_limits(admin: PolicyAdmin, args: argparse.Namespace) -> int:
    if args.clear:
        result = admin.clear_rate_limits()
    elif args.config is None:
        raise ValueError("give the limits as JSON (or @file), or --clear")
    else:
        result = admin.set_rate_limits(_changes(args.config))
    return _show(args, result, _config_text)


def _pool_text(status: dict) -> None:
    now = int(time.time() * 1000)
    print("breakers:")
    rows = [{**b, "node": b["node"] or "-",
             "open_for_ms": max(0, b["opened_until_ms"] - now) if b["state"] == "open" else "-"}
            for b in status["breakers"]]
    if rows:
        _table(rows, [("scope", "SCOPE"), ("service", "SERVICE"), ("node", "WORKER"), ("state", "STATE"),
                      ("failures", "FAILURES"), ("open_for_ms", "OPEN_FOR_MS")])
    else:
        print("  all closed")
    print("services:")
    _table([{"service": name, "workers": len(s["workers"]), "queue_length": s["queue_length"]}
            for name, s in status["services"].items()],
           [("service", "SERVICE"), ("workers", "WORKERS"), ("queue_length", "QUEUED")])
    print("workers:")
    _table([{"node": name, "services": ",".join(w["services"]), "draining": "yes" if w["draining"] else "no",
             "queue_length": w["queue_length"]} for name, w in status["workers"].items()],
           [("node", "WORKER"), ("services", "SERVICES"), ("draining", "DRAINING"), ("queue_length", "QUEUED")])


def cmd_pool_status(admin: PolicyAdmin, args: argparse.Namespace) -> int:
    return _show(args, admin.pool_status(), _pool_text)


def _scope(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("key", help="the value limited: a user id, device id, address or argument value")
    parser.add_argument("--service", default=None, help="a function's limits (with --request-type)")
    parser.add_argument("--request-type", default=None)
    parser.add_argument("--key-type", default=None,
                        help="only limits keyed by this: user_id, device_id, ip_address or an argument name")
    return parser


def add_commands(sub: argparse._SubParsersAction, verbs: argparse._SubParsersAction) -> None:
    """Top-level diagnostics on ``sub``; the changing verbs under ``genapi admin``."""
    _with_json(_scope(sub.add_parser("rl-status", help="how much of each rate limit KEY has used"))) \
        .set_defaults(policy_func=cmd_rl_status)
    _with_json(sub.add_parser("rl-global", help="the global rate limits in force")) \
        .set_defaults(policy_func=cmd_rl_global)
    _with_json(sub.add_parser("rl-config", help="every rate-limit setting in force, and where it comes from")) \
        .set_defaults(policy_func=cmd_rl_config)
    _with_json(sub.add_parser("pool-status", help="circuit breakers, live workers and queue lengths")) \
        .set_defaults(policy_func=cmd_pool_status)
    _with_json(_scope(verbs.add_parser("reset-rate-limit", help="give KEY its whole budget back"))) \
        .set_defaults(policy_func=cmd_reset)
    limits = _with_json(verbs.add_parser(
        "set-rate-limits", help="replace the rate limits on every gateway, now (JSON, or @file)",
        description="Keys given replace those in force (enabled, fail_open, timeout_ms, global_limits, "
                    "api_limits); the rest keep their value. --clear goes back to GENAPI_RATE_LIMITS."))
    limits.add_argument("config", nargs="?", default=None)
    limits.add_argument("--clear", action="store_true")
    limits.set_defaults(policy_func=cmd_set_limits)

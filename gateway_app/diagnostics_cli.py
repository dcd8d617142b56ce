"""``genapi health``, ``genapi stats`` and ``genapi call-flow`` (reference §14, on Redis directly).

``--json`` prints the dict of :mod:`gateway_app.diagnostics`; without it, a report for
people. Exit status: ``health`` 0 when every check is ``ok`` and 1 otherwise (``degraded``
or ``error``: a script's ``genapi health || alert`` fires on both); ``call-flow`` 1 when the
function (or version) cannot be called; ``stats`` 1 only when Redis cannot be reached.
"""

from __future__ import annotations

import argparse
import sys

from workers.settings import Settings

from . import callflow, diagnostics
from .admin import Admin
from .admin_cli import _print_json, _table, _with_json
from .policy_admin import PolicyAdmin

# ------------------------------------------------------------------ health


def _check_line(name: str, check: dict) -> str:
    if "error" in check:
        detail = check["error"]
    elif name == "redis":
        detail = f"{check['url']} ({check['latency_ms']} ms)"
    elif name == "broker":
        detail = "the Redis above" if check["same_as_redis"] else check["url"]
    elif name == "workers":
        detail = f"{check['live']} live, {check['draining']} draining" + \
            (f": {', '.join(check['nodes'])}" if check["nodes"] else " (no worker takes calls)")
    elif name == "functions":
        detail = f"{check['count']} in {check['services']} service(s)" + \
            (f"; no live worker for {', '.join(check['unserved'])}" if check["unserved"] else "")
    else:
        failed = {k: v for k, v in (check.get("checks") or {}).items() if v != "ok"}
        detail = f"{check['url']} answered {check['http_status']}" + \
            (f" ({', '.join(f'{k}: {v}' for k, v in failed.items())})" if failed else "")
    return f"  {name:<10} {check['status']:<9} {detail}"


def cmd_health(admin: Admin, args: argparse.Namespace, settings: Settings) -> int:
    report = diagnostics.health(settings, args.url)
    if args.json:
        _print_json(report)
    else:
        print(f"health: {report['status']}")
        for name, check in report["checks"].items():
            print(_check_line(name, check))
    return 0 if report["status"] == diagnostics.OK else 1


# ------------------------------------------------------------------ stats


def _stats_text(data: dict) -> None:
    registry = data["registry"]
    print(f"registry: {registry['functions']} function version(s) in {len(registry['services'])} service(s); "
          f"{data['failed_configs']} failed config(s) in 24 h; {len(data['pushed_services'])} pushed service(s)")
    if registry["services"]:
        # unversioned functions are most of them: only the versioned ones are spelled out
        _table([{"service": name, **counts, "versions": "; ".join(
                    f"{rt} {','.join(v or '(none)' for v in vs)}" for rt, vs in counts["versions"].items()
                    if vs != [""]) or "-"} for name, counts in registry["services"].items()],
               [("service", "SERVICE"), ("functions", "FUNCTIONS"), ("disabled", "DISABLED"),
                ("versions", "VERSIONED")])
    print(f"workers: {len(data['nodes'])} live")
    if data["nodes"]:
        _table([{"node": node_id, **node, "services": ",".join(node["services"]),
                 "draining": "yes" if node["draining"] else "no"} for node_id, node in data["nodes"].items()],
               [("node", "WORKER"), ("services", "SERVICES"), ("draining", "DRAINING"),
                ("heartbeat_age_ms", "HEARTBEAT_AGE_MS")])
    limits, breakers = data["rate_limits"], data["breakers"]
    print(f"rate limits: {'enabled' if limits['enabled'] else 'disabled'}, {limits['global_limits']} global, "
          f"{limits['api_limits']} per function (from {limits['source']})")
    print(f"breakers: {'on' if breakers['enabled'] else 'off'}; {breakers['open']} open, {breakers['half_open']} "
          f"half-open, {breakers['closed']} closed with failures")
    print(f"queues: {', '.join(f'{k} {v}' for k, v in data['queues'].items()) or 'none'}")
    gateways = data["gateways"]
    print(f"relay: {data['relay']['groups']} group(s); gateway processes alive: {gateways['live']}"
          f"{'+' if gateways['capped'] else ''}")
    red = data["redis"]
    print(f"redis: {red['redis_version']}, used_memory {red['used_memory_human']}, "
          f"{red['connected_clients']} client(s), up {red['uptime_in_seconds']} s")
    print(f"telemetry events: {data['telemetry_events']}")


def cmd_stats(admin: Admin, args: argparse.Namespace, settings: Settings) -> int:
    data = diagnostics.stats(admin, PolicyAdmin(admin.client, admin.keys, settings), settings)
    if args.json:
        _print_json(data)
    else:
        _stats_text(data)
    return 0


# ------------------------------------------------------------------ call-flow


def _flow_text(flow: dict) -> None:
    print(f"{flow['service']}.{flow['request_type']} version {flow['version'] or '(none)'} "
          f"({flow['resolution']})")
    nodes = ", ".join(f"{n['node_id']} ({'live' if n['live'] else 'gone'}"
                      f"{', draining' if n['draining'] else ''}"
                      f"{', breaker ' + n['breaker'] if n['breaker'] not in ('closed', None) else ''})"
                      for n in flow["nodes"]) or "none"
    for label, value in (("task", flow["task"]), ("mode", f"{flow['response_type']}, timeout {flow['timeout']}"
                                  f"{'' if flow['timeout'] == 'infinity' else ' ms'}"),
                         ("nodes", nodes), ("selection", flow["node_selection"]),
                         ("permission", f"{flow['permission']['strategy']}: {flow['permission']['description']}"),
                         ("retry", flow["retry"]["description"])):
        print(f"  {label:<11}{value}")
    print("steps:")
    for number, step in enumerate(flow["steps"], start=1):
        print(f"  {number:>2}. {step['phase']:<21}{step['desc']}")
        for letter, inner in zip("abcdefgh", step.get("worker", ()), strict=False):
            print(f"      {letter}. {inner['phase']:<20}{inner['desc']}")


def cmd_call_flow(admin: Admin, args: argparse.Namespace, settings: Settings) -> int:
    flow = callflow.call_flow(admin, PolicyAdmin(admin.client, admin.keys, settings), settings, args.service,
                                 args.request_type, args.version)
    if args.json:
        _print_json(flow)
    elif flow["config"] is not None:
        _flow_text(flow)
    if flow["config"] is None:
        print(f"genapi call-flow: {flow['error']} (service {flow['service']}; registered versions: "
              f"{', '.join(flow['known_versions']) or 'none'})", file=sys.stderr)
        return 1
    return 0


# ------------------------------------------------------------------ parser


def add_commands(sub: argparse._SubParsersAction) -> None:
    """``health``, ``stats`` and ``call-flow``; :func:`gateway_app.admin_cli.run` runs them."""
    health = _with_json(sub.add_parser(
        "health", help="check Redis, the broker, workers, functions (and a gateway); exit 1 unless all ok",
        description="Exit status 0 when every check is ok, 1 when any is degraded or failed. Each probe gives "
                    f"up after {diagnostics.PROBE_TIMEOUT:g} s."))
    health.add_argument("--url", default=None, help="also ask this gateway's /readyz (http://host:port)")
    health.set_defaults(admin_func=cmd_health, needs_settings=True)
    _with_json(sub.add_parser("stats", help="registry, workers, policies, relay, Redis and telemetry counts")) \
        .set_defaults(admin_func=cmd_stats, needs_settings=True)
    flow = _with_json(sub.add_parser(
        "call-flow", help="the config, workers and policies a call of SERVICE REQUEST_TYPE would go through",
        description="Exit status 1 when the function (or the version) cannot be called."))
    flow.add_argument("service")
    flow.add_argument("request_type")
    flow.add_argument("--version", default=None, help="an exact version (default: the latest enabled one)")
    flow.set_defaults(admin_func=cmd_call_flow, needs_settings=True)


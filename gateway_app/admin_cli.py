"""``genapi admin …``, ``genapi cache-status`` and ``genapi pushed-services``.

They work on Redis directly (whoever holds ``GENAPI_REDIS_URL`` is trusted) and need no
gateway HTTP. ``--json`` prints exactly what the matching ``/admin/`` endpoint returns;
without it, a table for people. Exit status: 0 on success, 1 when the function is unknown,
Redis cannot be reached or a forced pull finds no gateway to run it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from limits.errors import StorageError

from workers.protocol import Keys
from workers.settings import Settings

from .admin import Admin, UnknownFunction
from .failed_configs import SOURCES
from .puller import pull_status, request_pull

_USERINFO_PASSWORD = re.compile(r"(://[^/@:]*:)[^/]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL without its password (in ``user:password@`` or a ``password=`` parameter)."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1***@", url, count=1))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def _table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as aligned columns; ``columns`` is (key, heading) pairs."""
    cells = [[h for _, h in columns]] + [["-" if row.get(k) is None else str(row.get(k)) for k, _ in columns]
                                         for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# ------------------------------------------------------------------------- verbs


def _show(args: argparse.Namespace, data: Any, render: Callable[[Any], None], empty: str | None = None) -> int:
    """``--json``: the data as the admin API returns it; else ``empty`` or the table."""
    if args.json:
        _print_json(data)
    elif not data and empty is not None:
        print(empty)
    else:
        render(data)
    return 0


def _functions_table(listing: list[dict]) -> None:
    rows = [{**f, "version": f["version"] or "(none)", "latest": "*" if f["latest"] else "",
             "disabled": _yes(f["disabled"]) + (" (operator)" if f["override"] == "disabled" else ""),
             "available": _yes(f["available"]), "nodes": len(f["nodes"])} for f in listing]
    _table(rows, [("service", "SERVICE"), ("request_type", "FUNCTION"), ("version", "VERSION"),
                  ("latest", "DEFAULT"), ("disabled", "DISABLED"), ("available", "AVAILABLE"),
                  ("nodes", "NODES"), ("response_type", "MODE")])


def cmd_list(admin: Admin, args: argparse.Namespace) -> int:
    empty = "no functions registered" + (f" for service {args.service}" if args.service else "")
    return _show(args, admin.list_functions(args.service), _functions_table, empty)


def _change(action: str) -> Callable[[Admin, argparse.Namespace], int]:
    def run(admin: Admin, args: argparse.Namespace) -> int:
        if action == "delete":
            changed = admin.delete(args.service, args.request_type, args.version)
        else:
            changed = admin.set_disabled(args.service, args.request_type, args.version, action == "disable")

        def render(data: dict) -> None:
            for entry in data["changed"]:
                print(f"{action}d {entry['service']}.{entry['request_type']} version {entry['version'] or '(none)'}")
        return _show(args, {"changed": changed}, render)
    return run


def _failed_table(entries: list[dict]) -> None:
    rows = [{**e, "function": f"{e['service']}.{e['request_type'] or '*'}", "version": e["version"] or "-",
             "when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["inserted_at_ms"] / 1000)),
             "reason": "; ".join(e["reason"])} for e in entries]
    _table(rows, [("id", "ID"), ("when", "WHEN"), ("source", "SOURCE"), ("function", "FUNCTION"),
                  ("version", "VERSION"), ("node", "NODE"), ("reason", "REASON")])


def cmd_failed_configs(admin: Admin, args: argparse.Namespace) -> int:
    if args.clear:
        print(f"cleared {admin.failed.clear()} failed config(s)")
        return 0
    entries = admin.failed.list(source=args.source, service=args.service, limit=args.limit)
    return _show(args, entries, _failed_table, "no failed configs in the last 24 hours")


def _pushed_table(services: dict) -> None:
    rows = [{"service": name, **record, "nodes": ", ".join(record["nodes"])} for name, record in services.items()]
    _table(rows, [("service", "SERVICE"), ("config_version", "CONFIG_VERSION"), ("source", "SOURCE"),
                  ("functions", "FUNCTIONS"), ("nodes", "NODES")])


def cmd_pushed_services(admin: Admin, args: argparse.Namespace) -> int:
    return _show(args, admin.pushed_services(), _pushed_table, "no service has pushed (or been pulled) yet")


def _cache_report(status: dict) -> None:
    print(f"{status['count']} function version(s) in {len(status['services'])} service(s); "
          f"{len(status['nodes'])} live worker(s); {status['failed_configs']} failed config(s) in 24 h")
    if status["by_service"]:
        _table([{"service": name, **counts} for name, counts in status["by_service"].items()],
               [("service", "SERVICE"), ("functions", "FUNCTIONS"), ("disabled", "DISABLED")])
    for node, services in status["nodes"].items():
        print(f"worker {node}: {', '.join(services)}")


def cmd_cache_status(admin: Admin, args: argparse.Namespace) -> int:
    return _show(args, admin.cache_status(), _cache_report)


def _verdict(result: dict) -> None:
    if result["status"] == "mismatch":
        print(f"mismatch: the registry has {result['service']} at config_version {result['stored']}")
    else:
        print(result["status"].replace("_", " "))


def cmd_verify(admin: Admin, args: argparse.Namespace) -> int:
    return _show(args, admin.verify(args.service, args.config_version), _verdict)


def cmd_detail_error(admin: Admin, args: argparse.Namespace) -> int:
    admin.set_detail_error(args.state == "on")
    print(f"detail errors {args.state} for every gateway")
    return 0


def _seconds(text: str) -> float:
    """A positive number of seconds (``--wait``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, got {text}")
    return value


def cmd_pull(admin: Admin, args: argparse.Namespace, settings: Settings) -> int:
    before = pull_status(admin.client, admin.keys)["rounds"]
    services = [args.service] if args.service else None
    request_pull(admin.client, admin.keys, services)
    if args.no_wait:
        print("pull requested")
        return 0
    wait = settings.pull_timeout + 10 if args.wait is None else args.wait
    deadline = time.monotonic() + wait
    while (status := pull_status(admin.client, admin.keys))["rounds"] == before:
        if time.monotonic() > deadline:
            print(f"genapi admin pull: no gateway ran the pull within {wait:g}s; is one running? "
                  "(the request stays queued until one does)", file=sys.stderr)
            return 1
        time.sleep(0.1)
    shown = {name: value for name, value in status["services"].items()
             if services is None or name in services}
    if args.json:
        _print_json({**status, "services": shown})
        return 0
    if not shown:
        print("no services to pull: set GENAPI_SERVICE_CONFIGS on the gateways, or name a service")
        return 0
    failed = False
    for name, value in sorted(shown.items()):
        print(f"{name}: {value.get('last')} ({value.get('detail')})")
        failed |= value.get("last") == "failed"
    return 1 if failed and services else 0


# ------------------------------------------------------------------------ parser


def _with_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print the admin API's JSON")
    return parser


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``admin`` (with its verbs), ``cache-status`` and ``pushed-services``."""
    admin = sub.add_parser(
        "admin", help="change and inspect the function registry (works on Redis directly)",
        description="Change and inspect the function registry. Works on Redis directly (GENAPI_REDIS_URL); "
                    "--json prints what the matching /admin/ endpoint returns. Exit status 1: unknown function, "
                    "Redis unreachable, or a forced pull no gateway ran.")
    verbs = admin.add_subparsers(dest="verb", required=True, metavar="VERB")

    listing = _with_json(verbs.add_parser("list", help="every function version, with disabled/available"))
    listing.add_argument("--service", default=None)
    listing.set_defaults(admin_func=cmd_list)

    for action, text in (("disable", "stop serving a version (or all versions) at once, on every gateway"),
                         ("enable", "serve a disabled version (or all versions) again"),
                         ("delete", "remove a version (or all versions) from the registry")):
        verb = _with_json(verbs.add_parser(action, help=text))
        verb.add_argument("service")
        verb.add_argument("request_type")
        verb.add_argument("--version", default=None, help="one version (default: every version)")
        verb.set_defaults(admin_func=_change(action))

    failed = _with_json(verbs.add_parser("failed-configs", help="configs refused in the last 24 hours"))
    failed.add_argument("--service", default=None)
    failed.add_argument("--source", choices=SOURCES, default=None)
    failed.add_argument("--limit", type=int, default=100)
    failed.add_argument("--clear", action="store_true", help="forget every entry")
    failed.set_defaults(admin_func=cmd_failed_configs)

    pull = _with_json(verbs.add_parser("pull", help="pull configs now (every configured service, or SERVICE)"))
    pull.add_argument("service", nargs="?", default=None)
    pull.add_argument("--no-wait", action="store_true", help="ask for the pull and return at once")
    pull.add_argument("--wait", type=_seconds, default=None, metavar="SECONDS",
                      help="how long to wait for a gateway to run the round (default: GENAPI_PULL_TIMEOUT + 10 s)")
    pull.set_defaults(admin_func=cmd_pull, needs_settings=True)

    verify = _with_json(verbs.add_parser("verify", help="does the registry hold this config_version of SERVICE?"))
    verify.add_argument("service")
    verify.add_argument("config_version")
    verify.set_defaults(admin_func=cmd_verify)

    detail = verbs.add_parser("detail-error", help="show error details to clients (on) or not (off), everywhere")
    detail.add_argument("state", choices=("on", "off"))
    detail.set_defaults(admin_func=cmd_detail_error)

    for name, func, text in (("cache-status", cmd_cache_status, "what the registry holds"),
                             ("pushed-services", cmd_pushed_services, "the last push of each service")):
        _with_json(sub.add_parser(name, help=text)).set_defaults(admin_func=func)

    from . import diagnostics_cli, policy_cli  # they build on the helpers above
    policy_cli.add_commands(sub, verbs)
    diagnostics_cli.add_commands(sub)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one admin verb; Redis trouble and unknown functions are one clear line."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=10)
    admin = Admin(client, Keys(settings.key_prefix))
    prog = "genapi admin" if getattr(args, "verb", None) else f"genapi {args.command}"
    try:
        if hasattr(args, "policy_func"):
            from .policy_admin import PolicyAdmin
            return args.policy_func(PolicyAdmin(client, admin.keys, settings), args)
        if getattr(args, "needs_settings", False):
            return args.admin_func(admin, args, settings)
        return args.admin_func(admin, args)
    except (UnknownFunction, ValueError, OSError) as exc:  # ValueError: a bad limit, bad JSON
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        url = settings.rate_limit_redis_url or settings.redis_url
        print(f"{prog}: cannot reach the rate limiter's Redis at {redact_url(url)}: {exc}", file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"{prog}: cannot reach Redis at {redact_url(settings.redis_url)}: {exc}", file=sys.stderr)
        return 1

"""``genapi call SERVICE REQUEST_TYPE [KEY=VALUE ...]``: call a function from the shell.

It connects with the Python client (:mod:`gateway_app.client`), prints the result as one
JSON document per line (a stream: one line per chunk, as they arrive) and exits with

* 0 on success,
* 1 on an error answer (the error and ``can_retry`` go to stderr),
* 2 on a usage error,
* 3 when the gateway cannot be reached or the connection drops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

EXIT_ERROR, EXIT_USAGE, EXIT_CONNECTION = 1, 2, 3


class UsageError(ValueError):
    """The command line is wrong (exit status 2)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: kept as plain strings


def parse_value(text: str) -> Any:
    """A ``KEY=VALUE`` value: JSON when it parses (``1``, ``true``, ``"x"``, ``[1]``), else the text."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def call_args(json_args: str | None, pairs: list[str]) -> dict:
    """The call's ``args``: the ``--json`` object, then each ``KEY=VALUE`` over it."""
    args: dict = {}
    if json_args is not None:
        try:
            args = json.loads(json_args, parse_constant=_reject_constant)
        except ValueError as exc:
            raise UsageError(f"--json is not valid JSON: {exc}") from None
        if not isinstance(args, dict):
            raise UsageError("--json must be a JSON object, such as '{\"name\": \"Ada\"}'")
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"arguments are KEY=VALUE, got {pair!r}")
        args[key] = parse_value(value)
    return args


def default_url(env: dict | None = None) -> str:
    """``ws://127.0.0.1:<GENAPI_PORT or 8000>/ws``."""
    port = (os.environ if env is None else env).get("GENAPI_PORT") or "8000"
    return f"ws://127.0.0.1:{port}/ws"


def _token(args: argparse.Namespace) -> str | None:
    if args.token:
        return args.token
    if args.user:
        from workers.settings import Settings, SettingsError

        from .auth import mint_token

        try:
            settings = Settings.from_env()
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        try:
            return mint_token(settings.secret_key, args.user, roles, None, 3600)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return os.environ.get("GENAPI_TOKEN") or None


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def _fail(message: str, code: int) -> int:
    print(f"genapi call: {message}", file=sys.stderr, flush=True)
    return code


def _response_type(client, service: str, request_type: str, version: str | None) -> str | None:
    """The function's response type from the catalogue, when it lists it (not the built-ins)."""
    from .client import GenApiCallError

    if service in ("gateway", "relay"):
        return None
    try:
        entry = client.refresh_catalogue().entry(service, request_type, version)
    except GenApiCallError:
        return None  # the call itself will say what is wrong
    return None if entry is None else entry.get("response_type")


def run(args: argparse.Namespace) -> int:
    """Make the call; returns the exit status."""
    try:
        arguments = call_args(args.json_args, args.pairs)
        token = _token(args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    if args.timeout <= 0:
        return _fail("--timeout must be a positive number of seconds", EXIT_USAGE)
    from .client import AuthenticationRequired, Client, ConnectionLost, GenApiCallError

    url = args.url or default_url()
    client = Client(url, token, encoding="msgpack" if args.msgpack else "json", timeout=args.timeout,
                    reconnect=False)
    try:
        client.connect()
        mode = _response_type(client, args.service, args.request_type, args.fn_version)
        if mode == "none":
            client.notify(args.service, args.request_type, arguments, args.fn_version, wait=min(1.0, args.timeout))
            print("genapi call: sent (a response_type none function answers nothing)", file=sys.stderr)
            return 0
        for item in client.stream(args.service, args.request_type, arguments, args.fn_version, args.timeout):
            _print(item)
        return 0
    except ConnectionLost as exc:
        return _fail(exc.error, EXIT_CONNECTION)
    except GenApiCallError as exc:
        hint = ""
        if isinstance(exc, AuthenticationRequired):
            hint = " (give a token: GENAPI_TOKEN=..., --token, or --user USER with the gateway's GENAPI_SECRET_KEY)"
        return _fail(f"{exc.error} (can_retry: {str(exc.can_retry).lower()}){hint}", EXIT_ERROR)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0  # the reader went away (| head)
    finally:
        client.close()


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``genapi call``."""
    call = sub.add_parser(
        "call", help="call a function over the WebSocket and print its result",
        description="Call a function and print its result as JSON, one document per line (a stream: one line "
                    "per chunk, as they arrive). Exit status: 0 success, 1 error answer (on stderr, with "
                    "can_retry), 2 usage error, 3 gateway unreachable or connection lost.",
        epilog="Prefer GENAPI_TOKEN=... to --token: every user of the host can read a command line with ps. "
               "Example: GENAPI_TOKEN=$(genapi token alice) genapi call demo add a=2 b=3")
    call.add_argument("service")
    call.add_argument("request_type")
    call.add_argument("pairs", nargs="*", metavar="KEY=VALUE",
                      help="an argument; VALUE is read as JSON when it parses (1, true, \"x\", [1], {...}), "
                           "else as a string. The pairs come right after REQUEST_TYPE, before any option")
    call.add_argument("--json", dest="json_args", metavar="ARGS",
                      help="the arguments as one JSON object; KEY=VALUE pairs are applied over it")
    call.add_argument("--url", default=None, help="the gateway's WebSocket URL (default ws://127.0.0.1:PORT/ws, "
                                                  "PORT from GENAPI_PORT or 8000)")
    who = call.add_mutually_exclusive_group()
    who.add_argument("--token", default=None, help="a client token (default: GENAPI_TOKEN)")
    who.add_argument("--user", default=None,
                     help="mint a one-hour token for USER, signed with GENAPI_SECRET_KEY (as genapi token does)")
    call.add_argument("--roles", default="", metavar="A,B", help="with --user: comma-separated roles")
    call.add_argument("--version", dest="fn_version", default=None, metavar="VERSION",
                      help="the function version (default: latest)")
    call.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                      help="seconds to wait for each answer frame, and to connect (default 30)")
    call.add_argument("--msgpack", action="store_true", help="exchange MessagePack binary frames (genapi.msgpack)")
    call.set_defaults(func=run)

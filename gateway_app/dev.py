"""``genapi dev``: the whole system on one machine, stopped as one by Ctrl-C or SIGTERM.

Starts its own ``redis-server`` on a free port in a temporary directory (unless
``GENAPI_REDIS_URL`` is set), then the gateway, a worker serving the demo service, and
Flower. Child output goes to log files in that directory; their last lines are shown if a
child fails.

Every call shows in Flower at once: the worker and the gateway run with task events on
(``GENAPI_TASK_EVENTS=1`` unless set otherwise), and Flower, without authentication on
127.0.0.1, starts once the worker has registered (``genapi flower`` waits for it), so the
worker list it takes at start has the worker in it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from workers.settings import Settings, SettingsError

from . import processes
from .auth import mint_token

DEMO_MODULE = "workers.examples.demo"


class Stop(Exception):
    """SIGTERM or SIGINT arrived."""


def _raise_stop(signum, frame):
    raise Stop


def _status(port: int, admin_token: str) -> dict:
    """The gateway's readiness with details (the admin token unlocks them)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {admin_token}"})
    with urllib.request.urlopen(req, timeout=2) as reply:
        return json.load(reply)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_dev(port: int | None = None, flower_port: int = 5555, modules: list[str] | None = None) -> int:
    """Run until interrupted; returns the exit code. Every child is stopped by PID."""
    modules = modules or [DEMO_MODULE]
    workdir = Path(tempfile.mkdtemp(prefix="genapi-dev-"))
    env = os.environ.copy()
    env.setdefault("GENAPI_SECRET_KEY", secrets.token_urlsafe(32))
    env.setdefault("GENAPI_ADMIN_TOKEN", secrets.token_urlsafe(24))
    env["PYTHONUNBUFFERED"] = "1"
    if not env.get("GENAPI_TASK_EVENTS"):
        env["GENAPI_TASK_EVENTS"] = "1"  # a call shows in Flower from the moment it is sent
    for variable in ("GENAPI_FLOWER_BASIC_AUTH", "FLOWER_BASIC_AUTH"):
        env.pop(variable, None)  # Flower on 127.0.0.1 without a password, like the rest of dev
    children: list[tuple[str, subprocess.Popen, Path]] = []
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        log_path = workdir / f"{name}.log"
        process = processes.spawn(argv, env=env, log=open(log_path, "ab"))
        children.append((name, process, log_path))
        return process

    code = 0
    try:
        if not env.get("GENAPI_REDIS_URL"):
            redis_port = processes.free_port()
            redis = processes.start_redis(redis_port, workdir, log=open(workdir / "redis.log", "ab"))
            children.append(("redis", redis, workdir / "redis.log"))
            env["GENAPI_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            processes.wait_until(lambda: processes.port_open(redis_port), 10, "redis-server", redis)
        try:
            settings = Settings.from_env(env)
        except SettingsError as exc:
            print(f"genapi dev: {exc}", file=sys.stderr)
            return 2
        port = port or settings.port
        for what, number in (("gateway", port), ("Flower", flower_port)):
            if not processes.port_is_free(number):
                print(f"genapi dev: port {number} ({what}) is already in use; pick another with "
                      f"--{'port' if what == 'gateway' else 'flower-port'}", file=sys.stderr)
                return 2
        token = mint_token(settings.secret_key, "dev-user", ["admin"], ttl=7 * 86400)
        env.setdefault("GENAPI_TRY_PAGE", "1")  # the try-it page at /, signed in as dev-user
        env.setdefault("GENAPI_TRY_PAGE_TOKEN", token)
        python = [sys.executable, "-m", "gateway_app"]
        gateway = start("gateway", python + ["gateway", "--host", "127.0.0.1", "--port", str(port)])
        worker = start("worker", python + ["worker", *modules, "-l", "info"])
        flower = start("flower", python + ["flower", "--host", "127.0.0.1", "--port", str(flower_port)])
        admin_token = env["GENAPI_ADMIN_TOKEN"]
        processes.wait_until(lambda: _status(port, admin_token)["status"] == "ok", 60, "gateway", gateway,
                             interval=0.2)
        processes.wait_until(lambda: bool(_status(port, admin_token)["tasks"]), 60, "worker registration", worker,
                             interval=0.2)
        processes.wait_until(lambda: processes.port_open(flower_port), 60, "Flower", flower, interval=0.2)
        _banner(port, flower_port, token, settings, workdir)
        while True:
            for name, process, log_path in children:
                if process.poll() is not None:
                    print(f"\ngenapi dev: {name} exited with code {process.returncode}; stopping.\n"
                          f"{_tail(log_path)}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except Stop:
        print("\ngenapi dev: stopping...", file=sys.stderr)
    except (RuntimeError, TimeoutError) as exc:
        print(f"genapi dev: {exc}", file=sys.stderr)
        for name, _process, log_path in children:
            print(f"--- {name} ({log_path}) ---\n{_tail(log_path)}", file=sys.stderr)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        # the worker first, so it leaves the registry; Redis last
        order = ["worker", "gateway", "flower", "redis"]
        for _name, process, _ in sorted(children, key=lambda c: order.index(c[0])):
            processes.stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("genapi dev: all processes stopped.", file=sys.stderr)
    return code


def _banner(port: int, flower_port: int, token: str, settings: Settings, workdir: Path) -> None:
    url = f"ws://127.0.0.1:{port}/ws?token={token}"
    print(f"""
CeleryGenApi is running (Ctrl-C stops everything).

  Try it     http://127.0.0.1:{port}/        (the try-it page, signed in as dev-user)
  WebSocket  ws://127.0.0.1:{port}/ws      (token below; user dev-user, role admin)
  Ready      http://127.0.0.1:{port}/readyz
  Admin API  http://127.0.0.1:{port}/admin/functions   (header: Authorization: Bearer {settings.admin_token})
  Flower     http://127.0.0.1:{flower_port}/
  Redis      {settings.redis_url}
  Logs       {workdir}/

Call the demo service from another terminal:

  GENAPI_TOKEN='{token}' {sys.executable} -m gateway_app call demo hello name=Ada --url ws://127.0.0.1:{port}/ws

or talk the wire protocol (docs/protocol.md) with any WebSocket client:

  {sys.executable} -m websockets '{url}'

More tokens: GENAPI_SECRET_KEY='{settings.secret_key}' {sys.executable} -m gateway_app token USER
Registry:    GENAPI_REDIS_URL='{settings.redis_url}' {sys.executable} -m gateway_app admin list
""", flush=True)

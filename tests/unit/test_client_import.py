"""``from gateway_app.client import ...`` loads neither Flask nor Celery (nor gevent, kombu, or
any module of the workers SDK but its pure argument checks): a client application imports the
client without the server side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gateway_app.client as client

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = ("flask", "flask_sock", "celery", "kombu", "gevent", "redis", "marshmallow")
#: what the client shares with the gateway: the wording of argument errors
PURE_WORKERS_MODULES = {"workers", "workers.argtypes"}


def test_importing_the_client_loads_no_server_package():
    code = ("import json, sys\n"
            "from gateway_app.client import Client, AsyncClient, GenApiCallError\n"
            "Client  # noqa\n"
            f"print(json.dumps([sorted(m for m in {SERVER_SIDE!r} if m in sys.modules),\n"
            "                   sorted(m for m in sys.modules if m.split('.')[0] == 'workers')]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    server_side, workers_modules = json.loads(done.stdout)
    assert server_side == []
    assert set(workers_modules) <= PURE_WORKERS_MODULES


def test_public_names():
    assert set(client.__all__) >= {"Client", "AsyncClient", "GenApiCallError", "ConnectionLost", "InvalidArguments",
                                   "PermissionDenied", "Unavailable", "TimedOut", "RelayMessage"}
    for name in client.__all__:
        assert getattr(client, name).__doc__, f"{name} has no docstring"
    assert issubclass(client.ConnectionLost, client.GenApiCallError)
    assert client.ConnectionLost().can_retry is True

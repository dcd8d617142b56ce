"""``from gateway_app.client import ...`` loads neither Flask nor Celery (nor gevent, kombu or the
workers SDK): a client application installs and imports the client without the server side."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gateway_app.client as client

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = ("flask", "flask_sock", "celery", "kombu", "gevent", "redis", "workers", "marshmallow")


def test_importing_the_client_loads_no_server_package():
    code = ("import json, sys\n"
            "from gateway_app.client import Client, AsyncClient, GenApiCallError\n"
            "Client  # noqa\n"
            f"print(json.dumps(sorted(m for m in {SERVER_SIDE!r} if m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_public_names():
    assert set(client.__all__) >= {"Client", "AsyncClient", "GenApiCallError", "ConnectionLost", "InvalidArguments",
                                   "PermissionDenied", "Unavailable", "TimedOut", "RelayMessage"}
    for name in client.__all__:
        assert getattr(client, name).__doc__, f"{name} has no docstring"
    assert issubclass(client.ConnectionLost, client.GenApiCallError)
    assert client.ConnectionLost().can_retry is True

"""The gateway starts before Redis, reports it, and recovers when Redis comes up."""

from __future__ import annotations

import sys

from gateway_app import processes

from .conftest import ADMIN_TOKEN, ROOT, SECRET, call, http_json, request


def _ready(port: int) -> tuple[int, dict]:
    return http_json(f"http://127.0.0.1:{port}/readyz", token=ADMIN_TOKEN)


def test_gateway_reports_redis_down_then_recovers(tmp_path):
    redis_port, port = processes.free_port(), processes.free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "GENAPI_SECRET_KEY": SECRET,
           "GENAPI_ADMIN_TOKEN": ADMIN_TOKEN, "GENAPI_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    started: list = []
    try:
        gateway = processes.spawn([sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, log=open(tmp_path / "gw.log", "ab"))
        started.append(gateway)
        processes.wait_until(lambda: _ready(port)[0] == 503, 30, "gateway answers 503", gateway)
        status = _ready(port)[1]
        assert status["status"] == "unavailable" and status["checks"]["redis"].startswith("unavailable")
        # liveness stays up: the process is fine, only its dependency is not
        assert http_json(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})

        started.append(processes.start_redis(redis_port, tmp_path, log=open(tmp_path / "redis.log", "ab")))
        processes.wait_until(lambda: _ready(port)[0] == 200, 30, "gateway sees Redis", gateway, interval=0.2)
        worker = processes.spawn([sys.executable, "-m", "gateway_app", "worker", "tests.services.late",
                                  "-P", "solo"], env=env, log=open(tmp_path / "worker.log", "ab"),
                                 cwd=str(ROOT))
        started.append(worker)
        processes.wait_until(lambda: "late.hello" in _ready(port)[1]["tasks"], 60, "gateway sees the worker", worker,
                             interval=0.2)

        from websockets.sync.client import connect

        from gateway_app.auth import mint_token

        with connect(f"ws://127.0.0.1:{port}/ws?token={mint_token(SECRET, 'u')}") as ws:
            # the reply listener reconnected: answers arrive
            frame = call(ws, request("hello", {"name": "x"}, service="late"))
            assert frame["result"] == "hello x", frame
    finally:
        for process in reversed(started):
            processes.stop(process)

"""``/readyz`` follows Redis going away and coming back; ``/healthz`` does not care.

Each test runs a redis-server of its own (it stops and freezes it) and a ``genapi gateway``
subprocess; every process is stopped by PID.
"""

from __future__ import annotations

import signal
import time

import pytest
import redis

from gateway_app import processes

from .conftest import ADMIN_TOKEN, Stack, http_json

#: the bounds the issue sets: 503 within 15 s of Redis stopping, 200 again after it returns
FLIP_TO_503_S = 15
BACK_TO_200_S = 30


class OwnRedis:
    """A redis-server on a fixed port that a test may stop, start again and freeze."""

    def __init__(self, workdir) -> None:
        self.workdir = workdir
        self.port = processes.free_port()
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = processes.start_redis(self.port, self.workdir, log=open(self.workdir / "redis.log", "ab"))
        processes.wait_until(lambda: redis.Redis(port=self.port).ping(), 10, "redis-server", self.process)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)  # a frozen server must be able to act on SIGTERM
        processes.stop(self.process)


@pytest.fixture
def own(tmp_path):
    """(the stack, its Redis, a gateway on it); no worker is needed for readiness."""
    server = OwnRedis(tmp_path)
    stack = Stack(f"redis://127.0.0.1:{server.port}/0", tmp_path)
    try:
        yield stack, server, stack.start_gateway()
    finally:
        stack.stop_all()
        server.stop()


def ready(gateway) -> tuple[int, dict]:
    return http_json(f"http://127.0.0.1:{gateway.port}/readyz", token=ADMIN_TOKEN)


def subscribers(server: OwnRedis, channel: str) -> int:
    return dict(redis.Redis(port=server.port).pubsub_numsub(channel))[channel.encode()]


def test_readyz_is_503_within_15s_of_redis_stopping_and_200_after_it_returns(own):
    _, server, gateway = own
    status, body = ready(gateway)
    assert status == 200 and body["checks"]["reply_subscription"] == "ok"
    reply_channel = f"genapi:reply:{body['gateway_id']}"
    assert subscribers(server, reply_channel) == 1

    processes.stop(server.process)
    stopped = time.monotonic()
    processes.wait_until(lambda: ready(gateway)[0] == 503, FLIP_TO_503_S, "/readyz answers 503", gateway.process)
    assert time.monotonic() - stopped < FLIP_TO_503_S
    assert ready(gateway)[1]["checks"]["redis"].startswith("unavailable")
    # the reply listener notices too (it reads every 0.25 s), so a short outage cannot leave
    # a stale subscription behind a 200
    processes.wait_until(lambda: ready(gateway)[1]["checks"]["reply_subscription"] == "not subscribed",
                         FLIP_TO_503_S, "the reply listener notices", gateway.process)
    # without the token, the short body only
    assert http_json(f"http://127.0.0.1:{gateway.port}/readyz") == (503, {"status": "unavailable"})
    # liveness is not readiness: the process is fine, its dependency is not
    assert http_json(f"http://127.0.0.1:{gateway.port}/healthz") == (200, {"status": "ok"})

    server.start()  # the same port, an empty server
    processes.wait_until(lambda: ready(gateway)[0] == 200, BACK_TO_200_S, "/readyz answers 200 again",
                         gateway.process, interval=0.2)
    assert ready(gateway)[1]["checks"] == {"redis": "ok", "broker": "ok", "reply_subscription": "ok",
                                           "accepting_calls": "ok"}
    # the listener really subscribed again on the new server, not just set its flag
    processes.wait_until(lambda: subscribers(server, reply_channel) == 1, 5, "subscribed on the new server")


def test_readyz_answers_503_quickly_while_redis_is_frozen(own):
    """A Redis that accepts connections but never answers (SIGSTOP) must not hang the probe."""
    _, server, gateway = own
    assert ready(gateway)[0] == 200
    server.process.send_signal(signal.SIGSTOP)
    try:
        for _ in range(3):  # every probe is bounded, not only the first
            started = time.monotonic()
            status, body = ready(gateway)
            elapsed = time.monotonic() - started
            assert status == 503 and body["checks"]["redis"].startswith("unavailable"), body
            assert elapsed < 5, f"/readyz took {elapsed:.1f}s while Redis was frozen"
        started = time.monotonic()
        assert http_json(f"http://127.0.0.1:{gateway.port}/healthz") == (200, {"status": "ok"})
        assert time.monotonic() - started < 1
    finally:
        server.process.send_signal(signal.SIGCONT)
    processes.wait_until(lambda: ready(gateway)[0] == 200, BACK_TO_200_S, "/readyz answers 200 again",
                         gateway.process, interval=0.2)


def test_healthz_details_need_the_admin_token(own):
    _, _, gateway = own
    url = f"http://127.0.0.1:{gateway.port}/healthz"
    assert http_json(url) == (200, {"status": "ok"})
    assert http_json(url, token="wrong") == (200, {"status": "ok"})
    status, body = http_json(url, token=ADMIN_TOKEN)
    assert status == 200 and body["status"] == "ok"
    process = body["checks"]["process"]
    assert process["status"] == "ok" and process["connections"] == 0
    assert process["pid"] != gateway.process.pid  # a gunicorn worker answers, not the arbiter
    assert process["rss_bytes"] > 1_000_000 and process["open_fds"] > 0 and process["threads"] >= 1
    assert 0 <= process["uptime_s"] < 600
    with gateway.connect():
        processes.wait_until(lambda: http_json(url, token=ADMIN_TOKEN)[1]["checks"]["process"]["connections"] == 1,
                             5, "the WebSocket is counted")

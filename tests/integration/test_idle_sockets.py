"""Idle sockets (issue 11): the gateway raises its own open-files limit, and the idle-socket
benchmark runs end to end.

Both start real processes: a ``genapi gateway`` whose parent had a low soft limit, and
``bench/bench_idle.py`` (its own redis-server, gateway and client processes).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from bench.bench_idle import children, open_files_limits
from gateway_app import processes
from gateway_app.auth import mint_token

from .conftest import ROOT, SECRET, call, request

LOW_SOFT_LIMIT = 1024
JSON_KEYS = {"sockets", "connect_per_s", "rss_before_kb", "rss_after_kb", "kb_per_socket", "ping_failures",
             "ping_p50_ms", "ping_p99_ms", "nofile_soft", "nofile_hard"}

_, HARD = resource.getrlimit(resource.RLIMIT_NOFILE)
needs_room = pytest.mark.skipif(HARD == resource.RLIM_INFINITY or HARD <= LOW_SOFT_LIMIT,
                                reason=f"the hard open-files limit ({HARD}) is not above {LOW_SOFT_LIMIT}")


def low_soft_limit() -> None:
    """preexec_fn: the child starts with a soft limit of 1024, its hard limit unchanged."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT_LIMIT, hard))


@needs_room
def test_the_gateway_raises_its_open_files_soft_limit_to_the_hard_one(fresh_stack, tmp_path):
    port = processes.free_port()
    log_path = tmp_path / "gateway.log"
    argv = [sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "ab") as log:
        gateway = subprocess.Popen(argv, env=fresh_stack.env(), cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=low_soft_limit)
    try:
        # gunicorn raises the limit as it starts, before it forks the worker: the worker inherits it
        processes.wait_until(lambda: len(children(gateway.pid)) == 1, 30, "the gateway's worker", gateway)
        worker = children(gateway.pid)[0]
        soft, hard = open_files_limits(worker)
        assert soft == hard == HARD
        token = mint_token(SECRET, "limits-check")
        with connect(f"ws://127.0.0.1:{port}/ws?token={token}", open_timeout=10) as ws:
            assert call(ws, request("ping", {}, service="gateway"))["result"] == "pong"
        lines = [line for line in log_path.read_text().splitlines() if "open files" in line]
        assert len(lines) == 1 and f"from {LOW_SOFT_LIMIT} to {HARD}" in lines[0], lines
    finally:
        processes.stop(gateway)


def test_the_idle_socket_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "idle.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
    done = subprocess.run([sys.executable, "bench/bench_idle.py", "--sockets", "300", "--no-max", "--json", str(out)],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=100,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["phases"]) == ["10k"]
    phase = result["phases"]["10k"]
    assert JSON_KEYS <= set(phase), JSON_KEYS - set(phase)
    assert phase["sockets"] == phase["opened"] == 300
    assert phase["ping_failures"] == 0 and phase["open_failures"] == 0
    assert phase["released_s"] is not None and phase["connections_after_close"] == 0
    assert phase["rss_after_kb"] > phase["rss_before_kb"] > 0
    assert phase["nofile_soft"] == phase["nofile_hard"]
    assert "KB/socket" in done.stdout

"""gateway_app.processes.stop / stop_together: SIGTERM, one grace period, then SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import time

from gateway_app import processes

#: a child that says it is ready, then sleeps; with "ignore" it outlives SIGTERM
CHILD = """
import signal, sys, time
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


def child(mode: str) -> subprocess.Popen:
    return processes.spawn([sys.executable, "-c", CHILD, mode], log=subprocess.PIPE)


def started(*group: subprocess.Popen) -> None:
    """Wait until each child has installed its signal handling (it prints once it has)."""
    for process in group:
        processes.wait_until(lambda p=process: _ready(p), 10, "the child starting", process)


def _ready(process: subprocess.Popen) -> bool:
    return process.stdout.readline().strip() == b"ready"


def test_stop_together_shares_one_grace_period_and_kills_what_ignores_sigterm():
    stubborn = [child("ignore") for _ in range(3)]
    polite = child("obey")
    try:
        started(*stubborn, polite)
        began = time.monotonic()
        processes.stop_together([*stubborn, polite], grace=1.0)
        took = time.monotonic() - began
        assert all(p.returncode == -9 for p in stubborn)  # SIGKILL after the grace period
        assert polite.returncode == -15  # SIGTERM was enough
        assert 1.0 <= took < 2.5  # one grace period for all of them, not one each
    finally:
        for p in [*stubborn, polite]:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_stop_returns_the_exit_code_and_tolerates_a_process_that_already_ended():
    process = child("obey")
    started(process)
    assert processes.stop(process, grace=5) == -15
    assert processes.stop(process, grace=5) == -15  # again: nothing left to signal

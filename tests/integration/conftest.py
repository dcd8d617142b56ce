"""Real parts: a redis-server on a free port, `genapi worker` and `genapi gateway`
subprocesses, and WebSocket clients over TCP. Every process is stopped by PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from websockets.sync.client import connect

from gateway_app import processes
from gateway_app.auth import mint_token

ROOT = Path(__file__).resolve().parents[2]
SECRET = "integration-test-secret"
ADMIN_TOKEN = "integration-admin-token"
WORKER_OPTIONS = ["-P", "threads", "-c", "4", "-l", "info"]


class Stack:
    """Starts gateways and workers against one Redis database; stops them all at the end."""

    def __init__(self, redis_url: str, logdir: Path) -> None:
        self.redis_url = redis_url
        self.logdir = logdir
        self.redis = redis.Redis.from_url(redis_url)
        self.processes: list[subprocess.Popen] = []
        self.logs: dict[int, Path] = {}

    def env(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
        env.update(GENAPI_REDIS_URL=self.redis_url, GENAPI_SECRET_KEY=SECRET, GENAPI_ADMIN_TOKEN=ADMIN_TOKEN,
                   PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        path = self.logdir / f"{name}-{len(self.processes)}.log"
        with open(path, "ab") as log:
            process = processes.spawn(argv, env=env, log=log, cwd=str(ROOT))
        self.processes.append(process)
        self.logs[process.pid] = path
        return process

    def log_of(self, process: subprocess.Popen) -> str:
        """Everything the process has written so far."""
        return self.logs[process.pid].read_text(errors="replace")

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """Run ``genapi ARGS...`` against this stack's Redis; output captured as text."""
        return subprocess.run([sys.executable, "-m", "gateway_app", *args], env=self.env(**env), cwd=str(ROOT),
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def cli_json(self, *args: str, **env: str):
        """The decoded ``--json`` output of a ``genapi`` command that must succeed."""
        done = self.cli(*args, "--json", **env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def start_gateway(self, *workers: subprocess.Popen, args: tuple[str, ...] = (), **env: str) -> GatewayProcess:
        """Start a gateway (``args``: more ``genapi gateway`` options) and wait until it is
        healthy and sees each of ``workers``."""
        port = processes.free_port()
        argv = [sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1", "--port", str(port), *args]
        process = self._spawn("gateway", argv, self.env(**env))
        gateway = GatewayProcess(process, port)
        processes.wait_until(gateway.healthy, 30, "gateway", process)
        nodes = [self.node_of(worker) for worker in workers]
        processes.wait_until(lambda: all(self.sees_worker(gateway, n) for n in nodes), 10,
                             "gateway sees the workers", process)
        return gateway

    def sees_worker(self, gateway: GatewayProcess, node_id: str | None) -> bool:
        """The gateway routes to the node and serves every function it registered."""
        info = self.redis.get(f"genapi:node:{node_id}")
        if info is None or not gateway.sees_node(node_id):
            return False
        return set(json.loads(info)["tasks"]) <= set(gateway.status()["tasks"])

    def start_worker(self, *modules: str, options: list[str] = WORKER_OPTIONS, **env: str) -> subprocess.Popen:
        """Start a worker and wait until its node is in the registry."""
        argv = [sys.executable, "-m", "gateway_app", "worker", *modules, *options]
        process = self._spawn("worker", argv, self.env(**env))
        processes.wait_until(lambda: self.node_of(process) is not None, 60, "worker registration", process)
        return process

    def node_of(self, process: subprocess.Popen) -> str | None:
        """The node id a worker process registered under."""
        prefix = "genapi:node:"
        for key in self.redis.scan_iter(f"{prefix}*"):
            info = self.redis.get(key)
            if info and json.loads(info).get("pid") == process.pid:
                return key.decode()[len(prefix):]
        return None

    def stop(self, process: subprocess.Popen) -> int | None:
        return processes.stop(process)

    def stop_all(self) -> None:
        """Every process this stack started, all at once (their grace periods overlap)."""
        processes.stop_together(reversed(self.processes))


class GatewayProcess:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port

    def status(self) -> dict:
        """``/readyz`` with the admin token: readiness and what this gateway process sees."""
        return http_json(f"http://127.0.0.1:{self.port}/readyz", token=ADMIN_TOKEN)[1]

    def healthy(self) -> bool:
        return self.status()["status"] == "ok"

    def sees_node(self, node_id: str) -> bool:
        return node_id in self.status()["nodes"]

    def admin(self, method: str, path: str, body: dict | None = None, token: str | None = ADMIN_TOKEN):
        """(status, JSON) of an admin API request."""
        return http_json(f"http://127.0.0.1:{self.port}/admin/{path}", method, body, token)

    def url(self, path: str = "/ws", user: str | None = "alice", roles=("admin",), device=None, ttl=600,
            token: str | None = None) -> str:
        if token is None and user is not None:
            token = mint_token(SECRET, user, list(roles), device, ttl)
        query = f"?token={token}" if token is not None else ""
        return f"ws://127.0.0.1:{self.port}{path}{query}"

    def connect(self, **kwargs):
        return connect(self.url(**kwargs), max_size=None, open_timeout=10)


def http_json(url: str, method: str = "GET", body: dict | None = None, token: str | None = None):
    """(status, decoded JSON body) of one HTTP request; error statuses are returned, not raised."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            return error.code, json.loads(payload)
        except ValueError:
            return error.code, payload.decode(errors="replace")


def call(ws, request: dict | str, timeout: float = 10) -> dict:
    """Send one request and return the next frame, decoded."""
    ws.send(request if isinstance(request, str) else json.dumps(request))
    return json.loads(ws.recv(timeout=timeout))


def request(request_type: str, args: dict | None = None, request_id="r1", service="sample", **extra) -> dict:
    payload = {"service": service, "request_type": request_type, "request_id": request_id}
    if args is not None:
        payload["args"] = args
    payload.update(extra)
    return payload


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the session (never the machine's own on 6379)."""
    workdir = tmp_path_factory.mktemp("redis")
    port = processes.free_port()
    process = processes.start_redis(port, workdir, log=open(workdir / "redis.log", "ab"), databases=DATABASES)
    try:
        processes.wait_until(lambda: redis.Redis(port=port).ping(), 10, "redis-server", process)
        yield port
    finally:
        processes.stop(process)


DATABASES = 128
_databases = iter(range(1, DATABASES))


@pytest.fixture(scope="session")
def stack(redis_server, tmp_path_factory):
    """Database 0: the shared gateway and the sample worker most tests use."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/0", tmp_path_factory.mktemp("logs"))
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def fresh_stack(redis_server, tmp_path):
    """A stack on a database of its own, for tests that start and stop processes."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path)
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="session")
def sample_worker(stack):
    return stack.start_worker("tests.services.sample")


@pytest.fixture(scope="session")
def gateway(stack, sample_worker):
    return stack.start_gateway(sample_worker)


@pytest.fixture
def ws(gateway):
    with gateway.connect() as socket:
        yield socket


@pytest.fixture
def redis_db(redis_server):
    """A client on a database of its own of the real redis-server (for in-process tests)."""
    client = redis.Redis(port=redis_server, db=next(_databases))
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="module")
def modes_stack(redis_server, tmp_path_factory):
    """Two workers of ``tests.services.modes`` (distinct node names, one host) and a gateway,
    on a database of their own, shared by one test module."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("modes"))
    try:
        workers = [stack.start_worker("tests.services.modes") for _ in range(2)]
        stack.gateway = stack.start_gateway(*workers)
        stack.workers = workers
        yield stack
    finally:
        stack.stop_all()


def frames_until_terminal(ws, timeout: float = 10) -> list[dict]:
    """Every frame of one request up to and including its terminal one (has_more false and
    not an async ack)."""
    frames = []
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        frames.append(frame)
        is_ack = frame["async"] and frame["success"] and frame["result"] is None and not frame["has_more"] \
            and len(frames) == 1
        is_stream_ack = frame["result"] == "init" and frame["has_more"] and len(frames) == 1
        if not frame["has_more"] and not is_ack and not is_stream_ack:
            return frames


def nothing_more(ws, within: float = 1.0) -> bool:
    """True if no frame arrives within ``within`` seconds (a bounded check for absence)."""
    try:
        ws.recv(timeout=within)
    except TimeoutError:
        return True
    return False

"""The `genapi` commands as a user runs them: token, flower, dev, and the Procfile."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from gateway_app import processes
from gateway_app.auth import verify_token

from .conftest import ADMIN_TOKEN, ROOT, SECRET, call, http_json, request

DEMO = {"service": "demo", "request_type": "hello", "request_id": "1", "args": {"name": "Ada"}}


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def http_get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def test_token_command_prints_a_verifiable_token():
    out = subprocess.run(
        [sys.executable, "-m", "gateway_app", "token", "alice", "--roles", "admin, ops", "--device", "d1",
         "--ttl", "60"], env=clean_env(GENAPI_SECRET_KEY=SECRET), capture_output=True, text=True, check=True)
    identity = verify_token(SECRET, out.stdout.strip())
    assert identity is not None
    assert (identity.user_id, identity.roles, identity.device_id) == ("alice", ("admin", "ops"), "d1")


def test_bad_setting_fails_with_the_variable_name():
    out = subprocess.run([sys.executable, "-m", "gateway_app", "token", "alice"],
                         env=clean_env(GENAPI_PORT="eighty"), capture_output=True, text=True)
    assert out.returncode != 0
    assert "GENAPI_PORT must be an integer, got 'eighty'" in out.stderr


@pytest.mark.parametrize("basic_auth", [None, "admin:s3cret"], ids=["open-api", "basic-auth"])
def test_flower_api_answers(stack, sample_worker, gateway, basic_auth, tmp_path):
    port = processes.free_port()
    argv = [sys.executable, "-m", "gateway_app", "flower", "--port", str(port)]
    env = stack.env(GENAPI_FLOWER_BASIC_AUTH=basic_auth) if basic_auth else stack.env()
    flower = processes.spawn(argv, env=env, log=open(tmp_path / "flower.log", "ab"), cwd=str(ROOT))
    try:
        processes.wait_until(lambda: processes.port_open(port), 30, "flower", flower)
        url = f"http://127.0.0.1:{port}/api/workers?refresh=1"
        if basic_auth:
            assert http_get(url)[0] == 401
            headers = {"Authorization": "Basic " + b64encode(basic_auth.encode()).decode()}
        else:
            headers = {}
        node = stack.node_of(sample_worker)
        # Flower learns about workers by broadcasting; poll until it lists ours
        processes.wait_until(lambda: node in json.loads(http_get(url, headers)[1]), 30, "flower lists the worker")
        status, body = http_get(url, headers)
        assert status == 200
        worker = json.loads(body)[node]
        assert "genapi.sample" in json.dumps(worker["active_queues"])
        # task names show service, request type and version
        assert {"sample.add", "sample.ver@1.0.0", "sample.ver@2.0.0"} <= set(worker["registered"])

        # the worker sends no task events by itself; Flower turns them on (every 5 s while it runs),
        # so calls through the gateway show up in its task list within seconds
        with gateway.connect() as ws:
            def flower_saw_a_call() -> bool:
                assert call(ws, request("add", {"a": 20, "b": 22}))["result"] == 42
                tasks = json.loads(http_get(f"http://127.0.0.1:{port}/api/tasks?taskname=sample.add", headers)[1])
                return any(t.get("kwargs", "").find("20") >= 0 for t in tasks.values())

            processes.wait_until(flower_saw_a_call, 20, "flower shows the task", interval=0.5)
    finally:
        processes.stop(flower)


def _read_until(stream, pattern: str, deadline: float, seen: list[str]) -> re.Match:
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        match = regex.search(line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def test_dev_runs_the_system_and_ctrl_c_stops_everything():
    port, flower_port = processes.free_port(), processes.free_port()
    dev = subprocess.Popen(
        [sys.executable, "-m", "gateway_app", "dev", "--port", str(port), "--flower-port", str(flower_port)],
        env=clean_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        call_command = _read_until(dev.stdout, r"^\s+(GENAPI_TOKEN=\S+ \S+ -m gateway_app call .*)$", deadline,
                                   seen).group(1)
        command = _read_until(dev.stdout, r"^\s+(\S+ -m websockets '.*')$", deadline, seen).group(1)
        children = descendants(dev.pid)
        assert len(children) >= 4  # redis, gunicorn (+ its worker), celery worker, flower

        # the printed `genapi call` command prints the demo's result
        called = subprocess.run(call_command, shell=True, capture_output=True, text=True, env=clean_env(),
                                timeout=30)
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout) == {"greeting": "Hello, Ada!"}

        # the printed raw WebSocket command, with a request pasted on its stdin
        client = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=clean_env())
        client.stdin.write(json.dumps(DEMO) + "\n")
        client.stdin.flush()
        answer = _read_until(client.stdout, r"Hello, Ada!", time.monotonic() + 20, [])
        assert '"success":true' in answer.string
        client.stdin.close()
        client.wait(10)

        assert http_get(f"http://127.0.0.1:{flower_port}/api/workers")[0] == 200

        dev.send_signal(signal.SIGINT)  # what Ctrl-C does
        assert dev.wait(60) == 0
        leftover = [pid for pid in children if alive(pid)]
        assert leftover == [], f"processes left behind: {leftover}"
    finally:
        if dev.poll() is None:
            processes.stop(dev)
        for pid in descendants(dev.pid) if dev.poll() is None else ():
            os.kill(pid, signal.SIGKILL)


def test_procfile_runs_under_honcho(tmp_path):
    base = processes.free_port()
    while not all(processes.port_is_free(base + 100 * i) for i in range(4)):
        base = processes.free_port()
    redis_port = processes.free_port()
    env = clean_env(GENAPI_SECRET_KEY=SECRET, GENAPI_ADMIN_TOKEN=ADMIN_TOKEN, GENAPI_REDIS_PORT=str(redis_port))
    honcho = processes.spawn([sys.executable, "-m", "honcho", "start", "-f", str(ROOT / "Procfile"),
                              "-d", str(ROOT), "-p", str(base)],
                             env=env, log=open(tmp_path / "honcho.log", "ab"), cwd=str(ROOT))
    web = base + 100
    try:
        def demo_available() -> bool:
            return "demo.hello" in http_json(f"http://127.0.0.1:{web}/readyz", token=ADMIN_TOKEN)[1]["tasks"]

        processes.wait_until(demo_available, 90, "honcho: gateway sees the worker", honcho, interval=0.2)
        from websockets.sync.client import connect

        from gateway_app.auth import mint_token

        with connect(f"ws://127.0.0.1:{web}/ws?token={mint_token(SECRET, 'u1')}") as ws:
            ws.send(json.dumps(DEMO))
            assert json.loads(ws.recv(timeout=10))["result"] == {"greeting": "Hello, Ada!"}
        processes.wait_until(lambda: processes.port_open(base + 300), 30, "honcho: flower", honcho)
        children = descendants(honcho.pid)
    finally:
        processes.stop(honcho, grace=30)
    leftover = [pid for pid in children if alive(pid)]
    assert leftover == [], f"processes left behind: {leftover}\n{(tmp_path / 'honcho.log').read_text()}"


def test_gateway_refuses_to_start_with_a_hook_it_cannot_load(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gateway_app", "gateway", "--port", "1"],
                         env=clean_env(GENAPI_BEFORE_EXECUTE="tests.services.policies:no_such_hook",
                                       GENAPI_PUSH_TOKEN="a-push-token", PYTHONPATH=str(ROOT)),
                         capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert out.returncode != 0
    assert out.stderr.strip() == ("genapi gateway: GENAPI_BEFORE_EXECUTE: cannot load "
                                  "'tests.services.policies:no_such_hook': module 'tests.services.policies' "
                                  "has no attribute 'no_such_hook'"), out.stderr  # one line, no traceback


def test_gateway_hook_modules_are_found_in_the_working_directory_as_gunicorn_finds_them(tmp_path):
    (tmp_path / "myhooks.py").write_text("def quota(request_info, args):\n    return None\n")
    bad = subprocess.run([sys.executable, "-m", "gateway_app", "gateway", "--port", "1"],
                         env=clean_env(GENAPI_BEFORE_EXECUTE="myhooks:missing"), capture_output=True, text=True,
                         timeout=30, cwd=str(tmp_path))
    # the module was imported from the working directory; only the attribute is missing
    assert "cannot load 'myhooks:missing'" in bad.stderr and "No module" not in bad.stderr, bad.stderr
    assert "missing" in bad.stderr.split("cannot load", 1)[1].split(":", 2)[-1]

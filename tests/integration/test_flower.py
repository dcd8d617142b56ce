"""Flower as a user meets it: in ``genapi dev`` it lists the worker without a manual refresh and
shows each gateway call (readable name, arguments with sensitive ones redacted, a truthful
result); ``genapi flower`` takes its password from the environment only."""

from __future__ import annotations

import json
import signal
import sys
from base64 import b64encode
from pathlib import Path

from gateway_app import processes

from .conftest import ROOT, GatewayProcess, call, frames_until_terminal, request
from .test_commands import alive, descendants, http_get

DEMO_ADD = "demo.add@1.0.0"
CALLS = {  # task name -> (request, the kwargs Flower must show)
    DEMO_ADD: (request("add", {"a": 20, "b": 22}, "add", service="demo", version="1.0.0"), "{'a': 20, 'b': 22}"),
    "flower_svc.login": (request("login", {"user": "ada", "password": "hunter2"}, "login", service="flower_svc"),
                         "{'user': 'ada', 'password': '***'}"),
    "flower_svc.later": (request("later", {"n": 4}, "later", service="flower_svc"), "{'n': 4}"),
    "flower_svc.count": (request("count", {"n": 3}, "count", service="flower_svc"), "{'n': 3}"),
    "flower_svc.note": (request("note", {"text": "hi"}, "note", service="flower_svc"), "{'text': 'hi'}"),
}


def flower_json(port: int, path: str, headers: dict | None = None):
    status, body = http_get(f"http://127.0.0.1:{port}{path}", headers)
    assert status == 200, (status, body[:200])
    return json.loads(body)


def test_dev_shows_each_gateway_call_in_flower(fresh_stack, tmp_path):
    port, flower_port = processes.free_port(), processes.free_port()
    argv = [sys.executable, "-m", "gateway_app", "dev", "--port", str(port), "--flower-port", str(flower_port),
            "--module", "workers.examples.demo", "--module", "tests.services.flower_svc"]
    log = tmp_path / "dev.log"
    # the stack's Redis database (so dev starts no Redis of its own), secret and admin token
    dev = processes.spawn(argv, env=fresh_stack.env(), log=open(log, "ab"), cwd=str(ROOT))
    try:
        # the worker list Flower took when it started has the worker: no ?refresh=1
        processes.wait_until(lambda: any(DEMO_ADD in worker.get("registered", ())
                                         for worker in flower_json(flower_port, "/api/workers").values()),
                             90, "Flower lists the worker", dev, interval=0.25)
        gateway = GatewayProcess(dev, port)
        processes.wait_until(lambda: set(CALLS) <= set(gateway.status()["tasks"]), 30, "gateway sees the worker", dev)

        with gateway.connect() as ws:
            assert call(ws, CALLS[DEMO_ADD][0])["result"] == 42
            assert call(ws, CALLS["flower_svc.login"][0])["result"] == {"user": "ada", "ok": True}
            ws.send(json.dumps(CALLS["flower_svc.later"][0]))
            assert frames_until_terminal(ws)[-1]["result"] == 8
            ws.send(json.dumps(CALLS["flower_svc.count"][0]))
            assert [f["result"] for f in frames_until_terminal(ws)][1:] == [0, 1, 2, None]
            ws.send(json.dumps(CALLS["flower_svc.note"][0]))

        def shown() -> dict:
            tasks = flower_json(flower_port, "/api/tasks").values()
            return {t["name"]: t for t in tasks if t["name"] in CALLS and t["state"] == "SUCCESS"}

        processes.wait_until(lambda: set(shown()) == set(CALLS), 30, "Flower shows every call", dev, interval=0.25)
        tasks = shown()
        for name, (_request, kwargs) in CALLS.items():
            task = tasks[name]
            assert task["kwargs"] == kwargs, name
            # GENAPI_TASK_EVENTS=1 in dev: the gateway's task-sent event made the call visible when queued
            assert task["sent"] is not None and task["client"].startswith("gateway"), (name, task)
        # results are not stored: each task says what became of the call instead of "None"
        results = {name: task["result"] for name, task in tasks.items()}
        assert results == {
            DEMO_ADD: "'result (reply sent to the client)'",
            "flower_svc.login": "'result (reply sent to the client)'",
            "flower_svc.later": "'result (reply sent to the client)'",
            "flower_svc.count": results["flower_svc.count"],
            "flower_svc.note": "'result: mode none'",
        }
        assert results["flower_svc.count"].endswith("(reply sent to the client)'"), results
        detail = flower_json(flower_port, f"/api/task/info/{tasks['flower_svc.login']['uuid']}")
        assert detail["kwargs"] == "{'user': 'ada', 'password': '***'}"
        assert "hunter2" not in json.dumps(flower_json(flower_port, "/api/tasks")) + json.dumps(detail)

        children = descendants(dev.pid)
        assert len(children) >= 4  # gunicorn (+ its worker), celery worker (+ its pool), flower
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(60) == 0
        assert [pid for pid in children if alive(pid)] == []
    finally:
        processes.stop(dev)
        print(Path(log).read_text(errors="replace")[-3000:])


def test_flower_takes_its_password_from_the_environment_only(stack, sample_worker, tmp_path):
    port = processes.free_port()
    password = "flower-pw-3141"
    flower = processes.spawn([sys.executable, "-m", "gateway_app", "flower", "--port", str(port)],
                             env=stack.env(GENAPI_FLOWER_BASIC_AUTH=f"ops:{password}"),
                             log=open(tmp_path / "flower.log", "ab"), cwd=str(ROOT))
    try:
        processes.wait_until(lambda: processes.port_open(port), 60, "flower", flower)
        url = f"http://127.0.0.1:{port}/api/workers"
        assert http_get(url)[0] == 401
        assert http_get(url, {"Authorization": "Basic " + b64encode(b"ops:wrong").decode()})[0] == 401
        good = {"Authorization": "Basic " + b64encode(f"ops:{password}".encode()).decode()}
        assert http_get(url, good)[0] == 200
        # the worker was up before Flower: its first inspection (about a second) lists it, no refresh needed
        node = stack.node_of(sample_worker)
        processes.wait_until(lambda: node in json.loads(http_get(url, good)[1]), 15, "Flower lists the worker", flower)
        # genapi flower exec'd Flower: the PID is Flower's, and ps shows no password
        cmdline = Path(f"/proc/{flower.pid}/cmdline").read_bytes().split(b"\0")
        assert any(b"flower" == part for part in cmdline), cmdline
        assert not any(password.encode() in part for part in cmdline), cmdline
    finally:
        processes.stop(flower)


def test_flower_started_before_the_worker_lists_it_without_a_refresh(fresh_stack, tmp_path):
    # Flower inspects the workers once, as it starts: genapi flower waits for one to register first
    port, log = processes.free_port(), tmp_path / "flower.log"
    flower = processes.spawn([sys.executable, "-m", "gateway_app", "flower", "--port", str(port)],
                             env=fresh_stack.env(), log=open(log, "ab"), cwd=str(ROOT))
    try:
        processes.wait_until(lambda: "waiting up to 30 s for a worker" in log.read_text(), 30, "genapi flower waits",
                             flower)
        assert not processes.port_open(port)  # Flower itself has not started: it would take an empty worker list
        worker = fresh_stack.start_worker("tests.services.sample")
        node = fresh_stack.node_of(worker)
        processes.wait_until(lambda: processes.port_open(port), 60, "flower", flower)
        processes.wait_until(lambda: node in flower_json(port, "/api/workers"), 15, "Flower lists the worker", flower)
        assert "Inspect method" not in log.read_text(errors="replace")
    finally:
        processes.stop(flower)


def test_flower_refuses_a_password_on_the_command_line(stack):
    done = stack.cli("flower", "--basic-auth", "ops:pw")
    assert done.returncode != 0
    assert "set GENAPI_FLOWER_BASIC_AUTH=user:password in the environment" in done.stderr

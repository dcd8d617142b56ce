"""One structured log line per request at the gateway and per call at the worker; JSON with
``GENAPI_LOG_FORMAT=json``; arguments and secrets never appear in either log."""

from __future__ import annotations

import json

from gateway_app import processes

from .conftest import ADMIN_TOKEN, SECRET, call, request

WHISPER = "do-not-log-this-argument"


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def access_lines(text: str, message: str, request_id: str) -> list[dict]:
    return [line for line in json_lines(text)
            if line.get("logger") == "genapi.access" and line.get("message") == message
            and line.get("request_id") == request_id]


def test_json_lines_for_each_request_and_call_without_arguments_or_secrets(fresh_stack):
    env = dict(GENAPI_LOG_FORMAT="json", GENAPI_PUSH_TOKEN="push-token-never-logged")
    worker = fresh_stack.start_worker("tests.services.sample", **env)
    gateway = fresh_stack.start_gateway(worker, **env)
    with gateway.connect(user="carol") as ws:
        assert call(ws, request("echo", {"text": WHISPER}, request_id="logged-1"))["success"] is True
        assert call(ws, request("no_such", request_id="logged-2"))["success"] is False

    processes.wait_until(lambda: access_lines(fresh_stack.log_of(gateway.process), "request", "logged-2"), 10,
                         "the gateway's request lines")
    processes.wait_until(lambda: access_lines(fresh_stack.log_of(worker), "call", "logged-1"), 10,
                         "the worker's call line")
    gateway_log, worker_log = fresh_stack.log_of(gateway.process), fresh_stack.log_of(worker)

    [line] = access_lines(gateway_log, "request", "logged-1")
    assert {k: line[k] for k in ("service", "request_type", "mode", "outcome", "user_id")} == \
        {"service": "sample", "request_type": "echo", "mode": "sync", "outcome": "ok", "user_id": "carol"}
    assert line["level"] == "info" and line["ts"].endswith("Z") and line["duration_ms"] > 0
    assert line["node"] == fresh_stack.node_of(worker) and "version" in line
    [refused] = access_lines(gateway_log, "request", "logged-2")
    assert refused["outcome"] == "unsupported_function" and refused["node"] is None

    [done] = access_lines(worker_log, "call", "logged-1")
    assert done["task"] == "sample.echo" and done["outcome"] == "result" and done["duration_ms"] >= 0
    assert done["pool_name"] == fresh_stack.node_of(worker)
    # the worker's other lines (Celery's own) are JSON too
    started = [line for line in json_lines(worker_log) if "ready" in line.get("message", "")]
    assert started, "Celery's 'ready' line is not JSON"

    for log in (gateway_log, worker_log):
        for secret in (WHISPER, SECRET, ADMIN_TOKEN, "push-token-never-logged"):
            assert secret not in log


def test_text_lines_by_default(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.sample")
    gateway = fresh_stack.start_gateway(worker)
    with gateway.connect(user="dave") as ws:
        assert call(ws, request("add", {"a": 1, "b": 2}, request_id="plain-1"))["result"] == 3

    def the_line() -> str | None:
        return next((line for line in fresh_stack.log_of(gateway.process).splitlines()
                     if "genapi.access: request" in line and "request_id=plain-1" in line), None)

    processes.wait_until(lambda: the_line() is not None, 10, "the gateway's request line")
    line = the_line()
    assert "service=sample request_type=add" in line and "outcome=ok" in line and "duration_ms=" in line

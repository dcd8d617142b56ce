"""Graceful overload with real parts: the per-connection cap on calls in flight
(``GENAPI_MAX_IN_FLIGHT``) and the queue-length limit (``GENAPI_MAX_QUEUE_LENGTH``), both
answered ``Service temporarily unavailable`` before dispatch, in every mode."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from gateway_app.processes import wait_until

from .conftest import Stack, _databases, call, frames_until_terminal, nothing_more, request

REFUSAL = {"result": None, "success": False, "error": "Service temporarily unavailable", "async": False,
           "has_more": False, "can_retry": True}
CAP = 2
QUEUE_LIMIT = 5
SOLO = ["-P", "solo", "-l", "info"]


def refusal(request_id) -> dict:
    return {"request_id": request_id, **REFUSAL}


def nap(request_id: str, ms: int) -> dict:
    return request("nap", {"ms": ms}, request_id=request_id)


@pytest.fixture(scope="module")
def capped(redis_server, tmp_path_factory):
    """A gateway with ``GENAPI_MAX_IN_FLIGHT=2`` and a worker of four threads."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("capped"))
    try:
        worker = stack.start_worker("tests.services.sample", "tests.services.modes")
        stack.gateway = stack.start_gateway(worker, GENAPI_MAX_IN_FLIGHT=str(CAP))
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def queued(redis_server, tmp_path_factory):
    """A gateway with ``GENAPI_MAX_QUEUE_LENGTH=5`` and one solo worker, easy to keep busy."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("queued"))
    try:
        stack.worker = stack.start_worker("tests.services.modes", options=SOLO)
        stack.gateway = stack.start_gateway(stack.worker, GENAPI_MAX_QUEUE_LENGTH=str(QUEUE_LIMIT))
        yield stack
    finally:
        stack.stop_all()


def test_the_call_over_the_cap_is_refused_at_once_and_only_on_its_connection(capped):
    gateway = capped.gateway
    with gateway.connect() as ws, gateway.connect() as other:
        ws.send(json.dumps(nap("n1", 1500)))
        ws.send(json.dumps(nap("n2", 1500)))
        started = time.monotonic()
        assert call(ws, request("add", {"a": 1, "b": 2}, request_id="third")) == refusal("third")
        assert time.monotonic() - started < 1.0  # not after the naps
        assert call(other, request("add", {"a": 1, "b": 2}, request_id="o"))["result"] == 3
        answers = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        assert sorted(a["request_id"] for a in answers) == ["n1", "n2"]
        assert all(a["success"] for a in answers)
        assert call(ws, request("add", {"a": 2, "b": 2}, request_id="after"))["result"] == 4


@pytest.mark.parametrize("mode, payload", [
    ("sync", request("add", {"a": 1, "b": 2}, request_id="m")),
    ("async", request("async_add", {"a": 1, "b": 2}, request_id="m")),
    ("stream", request("count", {"n": 3}, request_id="m", service="modes")),
    ("none", request("record", {"key": "overload:none"}, request_id="m")),
])
def test_every_mode_gets_exactly_the_refusal_frame(capped, mode, payload):
    gateway = capped.gateway
    with gateway.connect() as ws:
        ws.send(json.dumps(nap("n1", 1200)))
        ws.send(json.dumps(nap("n2", 1200)))
        assert call(ws, payload) == refusal("m")
        answers = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        assert sorted(a["request_id"] for a in answers) == ["n1", "n2"]
        assert nothing_more(ws, 0.3)
    if mode == "none":
        assert capped.redis.get("overload:none") is None  # never reached a worker


def test_a_connection_at_its_cap_still_answers_builtins(capped):
    gateway = capped.gateway
    with gateway.connect() as ws:
        ws.send(json.dumps(nap("n1", 800)))
        ws.send(json.dumps(nap("n2", 800)))
        pong = call(ws, request("ping", service="gateway", request_id="p"))
        assert pong["request_id"] == "p" and pong["success"] is True
        [json.loads(ws.recv(timeout=10)) for _ in range(2)]


def _blocked(stack: Stack, mark: str, ms: int):
    """Keep the solo worker busy with one long async call; returns its connection."""
    ws = stack.gateway.connect()
    ws.send(json.dumps(request("async_wait", {"mark": mark, "ms": ms}, request_id="blocker", service="modes")))
    wait_until(lambda: stack.redis.get(f"{mark}:started") == b"1", 10, "the worker is busy")
    return ws


def _terminal_frames(ws, expected: int, timeout: float = 20) -> dict:
    """Every frame received until ``expected`` requests had a terminal one (async acks and
    stream init frames are not terminal), by request id."""
    frames: dict = {}
    done = 0
    deadline = time.monotonic() + timeout
    while done < expected:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        frames.setdefault(frame["request_id"], []).append(frame)
        if not frame["async"] or frame["success"] is False:
            done += 1
    return frames


def test_a_full_queue_refuses_calls_that_then_never_reach_the_worker(queued):
    blocker = _blocked(queued, "overload:blocker", 2500)
    count = 20
    with blocker, queued.gateway.connect() as ws:
        for i in range(count):
            ws.send(json.dumps(request("async_wait", {"mark": f"overload:q{i}", "ms": 0}, request_id=i,
                                       service="modes")))
        frames = _terminal_frames(ws, count)
        assert nothing_more(ws, 0.5)
        refused = sorted(i for i, got in frames.items() if got == [refusal(i)])
        admitted = sorted(i for i, got in frames.items() if got != [refusal(i)])
        assert len(refused) + len(admitted) == count
        # the first refusals come at once; after each one in a row the connection's next frame
        # is read a little later (overload.Backoff), when the worker may have made room again
        assert admitted[0] == 0 and refused and refused[0] <= QUEUE_LIMIT + 3
        for i in admitted:  # the ack, then the result: exactly one terminal frame
            assert [(f["async"], f["success"], f["result"]) for f in frames[i]] == [(True, True, None),
                                                                                   (False, True, "waited")]
        assert frames_until_terminal(blocker)[-1]["result"] == "waited"
    for i in admitted:
        assert queued.redis.get(f"overload:q{i}:started") == b"1"
    for i in refused:
        assert queued.redis.get(f"overload:q{i}:started") is None
    _wait_for_metric(queued, 'outcome="queue_full"')


def test_a_worker_direct_queue_is_limited_too(queued):
    blocker = _blocked(queued, "overload:direct-blocker", 2000)
    count = 15
    with blocker, queued.gateway.connect() as ws:
        for i in range(count):  # choose_node_mode "first": the worker's own queue <node>.dq2
            ws.send(json.dumps(request("where_first", request_id=i, service="modes")))
        frames = _terminal_frames(ws, count)
        refused = [i for i, got in frames.items() if got == [refusal(i)]]
        assert len(frames) == count and all(len(got) == 1 for got in frames.values())
        assert refused and min(refused) <= QUEUE_LIMIT + 3
        assert all(got[0]["success"] for i, got in frames.items() if i not in refused)
        assert frames_until_terminal(blocker)[-1]["result"] == "waited"


def _wait_for_metric(stack: Stack, needle: str) -> None:
    url = f"http://127.0.0.1:{stack.gateway.port}/metrics"

    def present() -> bool:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return needle in reply.read().decode()

    wait_until(present, 10, f"{needle} in /metrics")


@pytest.mark.parametrize("name, value, message", [
    ("GENAPI_MAX_IN_FLIGHT", "-1", "GENAPI_MAX_IN_FLIGHT must be between 0 and 1000000, got -1"),
    ("GENAPI_MAX_QUEUE_LENGTH", "lots", "GENAPI_MAX_QUEUE_LENGTH must be an integer, got 'lots'"),
])
def test_a_bad_value_stops_the_gateway_naming_the_variable(fresh_stack, name, value, message):
    done = fresh_stack.cli("gateway", "--port", "1", **{name: value})
    assert done.returncode != 0
    assert f"genapi: {message}" in done.stderr

"""SIGTERM to the gateway drains: answers in flight, refuses new calls, closes with 1001."""

from __future__ import annotations

import json
import signal

import pytest
from websockets.exceptions import ConnectionClosed

from gateway_app.processes import wait_until

from .conftest import call, request


@pytest.fixture
def own_gateway(stack, sample_worker):
    gateway = stack.start_gateway(sample_worker)
    return gateway


def _wait_dispatched(gateway) -> None:
    """The call is in the gateway's pending table (sent to the worker) before SIGTERM."""
    wait_until(lambda: gateway.status()["pending"] == 1, 10, "the gateway dispatched the call", interval=0.02)


def _close_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    return closed.value.rcvd.code


def test_call_in_flight_is_answered_before_the_socket_closes(own_gateway):
    with own_gateway.connect() as ws:
        ws.send(json.dumps(request("nap", {"ms": 1000}, request_id="inflight")))
        _wait_dispatched(own_gateway)
        own_gateway.process.send_signal(signal.SIGTERM)
        frame = json.loads(ws.recv(timeout=10))
        assert frame["request_id"] == "inflight" and frame["result"] == "slept 1000 ms"
        assert _close_code(ws) == 1001
    assert own_gateway.process.wait(15) == 0


def test_new_calls_are_refused_and_slow_ones_answered_unavailable(own_gateway):
    with own_gateway.connect() as ws:
        ws.send(json.dumps(request("nap", {"ms": 8000}, request_id="too-slow")))
        _wait_dispatched(own_gateway)
        own_gateway.process.send_signal(signal.SIGTERM)
        wait_until(lambda: call(ws, request("add", {"a": 1, "b": 1}, request_id="new"))["error"]
                   == "Service temporarily unavailable", 5, "the gateway refuses new calls")
        frame = json.loads(ws.recv(timeout=10))
        assert frame == {"request_id": "too-slow", "result": None, "success": False,
                         "error": "Service temporarily unavailable", "async": False, "has_more": False,
                         "can_retry": True}
        assert _close_code(ws) == 1001
    assert own_gateway.process.wait(15) == 0


def test_a_worker_stopping_warmly_finishes_its_stream_and_takes_no_new_calls(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.modes")
    gateway = fresh_stack.start_gateway(worker)
    node = fresh_stack.node_of(worker)
    with gateway.connect() as ws, gateway.connect() as other:
        ws.send(json.dumps(request("slow_count", {"n": 8, "ms": 150}, request_id="s", service="modes")))
        assert json.loads(ws.recv(timeout=10))["result"] == "init"
        assert json.loads(ws.recv(timeout=10))["result"] == 0
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: not gateway.sees_node(node), 2, "the worker stops taking calls", interval=0.05)
        refused = call(other, request("where_any", request_id="new", service="modes"))
        assert (refused["error"], refused["can_retry"]) == ("Service temporarily unavailable", True)
        frames = []
        while not frames or frames[-1]["has_more"]:
            frames.append(json.loads(ws.recv(timeout=10)))
        assert [f["result"] for f in frames] == [1, 2, 3, 4, 5, 6, 7, None]  # every chunk, then the end
        assert frames[-1]["success"] is True
    assert worker.wait(15) == 0

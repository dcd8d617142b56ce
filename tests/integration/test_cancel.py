"""``gateway.cancel`` and disconnects stop running streams and async calls."""

from __future__ import annotations

import json
import uuid

import pytest

from gateway_app.processes import wait_until

from .conftest import call, nothing_more, request


def rq(request_type: str, args: dict, request_id="c1") -> dict:
    return request(request_type, args, request_id=request_id, service="modes")


def cancel(request_id, own_id="cx") -> dict:
    return request("cancel", {"request_id": request_id}, request_id=own_id, service="gateway")


@pytest.fixture
def ws(modes_stack):
    with modes_stack.gateway.connect() as socket:
        yield socket


def ticks(stack, name: str) -> int:
    value = stack.redis.get(f"{name}:ticks")
    return -1 if value is None else int(value)


def stays_still(stack, name: str, seconds: float) -> bool:
    """The ticker's counter does not move for ``seconds`` (it ticks every 50 ms when alive)."""
    import time

    before, started = ticks(stack, name), time.monotonic()
    while time.monotonic() - started < seconds:
        if ticks(stack, name) != before:
            return False
    return True


def test_cancel_mid_stream_ends_it_and_stops_the_producer(ws, modes_stack):
    name = f"t-{uuid.uuid4().hex[:8]}"
    ws.send(json.dumps(rq("ticker", {"mark": name, "ms": 50})))
    assert json.loads(ws.recv(timeout=10))["result"] == "init"
    for i in range(3):
        assert json.loads(ws.recv(timeout=10))["result"] == i
    ws.send(json.dumps(cancel("c1")))
    frames = []
    while not frames or frames[-1]["request_id"] != "cx":
        frames.append(json.loads(ws.recv(timeout=10)))
    chunks, end, answer = frames[:-2], frames[-2], frames[-1]
    assert all(f["has_more"] for f in chunks)  # chunks already on their way before the cancel
    assert end == {"request_id": "c1", "result": None, "success": True, "error": None, "async": True,
                   "has_more": False, "can_retry": False}
    assert answer["success"] is True and answer["result"] == {"cancelled": "c1"}
    wait_until(lambda: modes_stack.redis.get(f"{name}:closed") == b"yes", 5, "the generator's finally ran")
    assert stays_still(modes_stack, name, 0.5)
    assert nothing_more(ws, 0.3)


def test_cancelling_an_async_call_answers_it_once(ws, modes_stack):
    name = f"a-{uuid.uuid4().hex[:8]}"
    ws.send(json.dumps(rq("async_wait", {"mark": name, "ms": 1500})))
    assert json.loads(ws.recv(timeout=10))["async"] is True  # the ack
    wait_until(lambda: modes_stack.redis.get(f"{name}:started") is not None, 10, "the call started")
    ws.send(json.dumps(cancel("c1")))
    assert json.loads(ws.recv(timeout=10)) == {
        "request_id": "c1", "result": None, "success": False, "error": "Request cancelled", "async": False,
        "has_more": False, "can_retry": False}
    assert json.loads(ws.recv(timeout=10))["result"] == {"cancelled": "c1"}
    wait_until(lambda: modes_stack.redis.get(f"{name}:finished") is not None, 10, "the function returned")
    assert nothing_more(ws, 1.0)  # its result is dropped


@pytest.mark.parametrize("target", ["never-sent", 12, {"x": 1}])
def test_cancelling_an_unknown_request_is_an_error(ws, target):
    answer = call(ws, cancel(target))
    assert answer["success"] is False and answer["request_id"] == "cx"
    shown = json.dumps(target)  # the id as the client wrote it
    assert answer["error"] == f"Invalid request: no running async or stream request {shown} on this connection"


def test_cancelling_a_finished_request_is_an_error(ws):
    ws.send(json.dumps(rq("count", {"n": 2})))
    while json.loads(ws.recv(timeout=10))["has_more"]:
        pass
    assert call(ws, cancel("c1"))["error"].startswith("Invalid request: no running async or stream request")


def test_a_sync_call_cannot_be_cancelled(ws):
    assert call(ws, cancel("c1"))["success"] is False
    assert call(ws, request("cancel", {}, request_id="cy", service="gateway"))["error"] == (
        "Invalid request: cancel needs args.request_id, the id of the request to stop")


def test_another_connection_cannot_cancel_my_stream(modes_stack):
    name = f"o-{uuid.uuid4().hex[:8]}"
    with modes_stack.gateway.connect() as mine, modes_stack.gateway.connect() as theirs:
        mine.send(json.dumps(rq("ticker", {"mark": name, "ms": 50})))
        assert json.loads(mine.recv(timeout=10))["result"] == "init"
        assert call(theirs, cancel("c1"))["success"] is False
        assert json.loads(mine.recv(timeout=10))["has_more"] is True  # still streaming
        assert call(mine, cancel("c1", own_id="mine"))["request_id"] in ("c1", "mine")


def test_a_disconnect_stops_the_clients_streams(modes_stack):
    name = f"d-{uuid.uuid4().hex[:8]}"
    with modes_stack.gateway.connect() as ws:
        ws.send(json.dumps(rq("ticker", {"mark": name, "ms": 50})))
        assert json.loads(ws.recv(timeout=10))["result"] == "init"
        assert json.loads(ws.recv(timeout=10))["result"] == 0
    wait_until(lambda: modes_stack.redis.get(f"{name}:closed") == b"yes", 5, "the generator's finally ran")
    assert stays_still(modes_stack, name, 0.5)
    wait_until(lambda: modes_stack.gateway.status()["pending"] == 0, 5, "the gateway forgot the call")

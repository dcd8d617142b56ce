"""Sync calls end to end: WebSocket → gateway → Celery → worker → pub/sub → WebSocket."""

from __future__ import annotations

import json

from .conftest import call, request

FRAME_KEYS = {"request_id", "result", "success", "error", "async", "has_more", "can_retry"}


def test_positional_arguments_in_parameter_order(ws):
    frame = call(ws, request("add", {"a": 2, "b": 40.5}, request_id="p1"))
    assert frame == {"request_id": "p1", "result": 42.5, "success": True, "error": None,
                     "async": False, "has_more": False, "can_retry": False}


def test_map_arguments_get_defaults_and_nulls(ws):
    frame = call(ws, request("echo", {"text": "hi"}, request_id=7))
    assert frame["success"] is True
    assert frame["request_id"] == 7
    assert frame["result"] == {"text": "hi", "times": 2, "note": None}


def test_request_id_of_any_json_type_is_echoed(ws):
    for request_id in ("abc", 12, 1.5, {"n": 1}, [1, "x"]):
        assert call(ws, request("add", {"a": 1, "b": 1}, request_id=request_id))["request_id"] == request_id


def test_every_frame_has_exactly_the_seven_keys(ws):
    assert set(call(ws, request("add", {"a": 1, "b": 2}))) == FRAME_KEYS
    assert set(call(ws, request("nope"))) == FRAME_KEYS
    assert set(call(ws, "not json")) == FRAME_KEYS


def test_pipelined_requests_each_get_one_answer(ws):
    for i in range(20):
        ws.send(json.dumps(request("add", {"a": i, "b": 1}, request_id=i)))
    frames = [json.loads(ws.recv(timeout=10)) for _ in range(20)]
    assert sorted(f["request_id"] for f in frames) == list(range(20))
    assert all(f["result"] == f["request_id"] + 1 for f in frames)


def test_unknown_service_function_and_version(ws):
    assert call(ws, request("nope"))["error"] == "unsupported function: nope version latest"
    assert call(ws, request("add", service="ghost"))["error"] == "unsupported function: add version latest"
    frame = call(ws, request("add", {"a": 1, "b": 1}, version="9.9.9"))
    assert frame["error"] == "unsupported function: add version 9.9.9"
    assert frame["success"] is False and frame["can_retry"] is False


def test_latest_enabled_version_is_used_without_a_version(ws):
    assert call(ws, request("ver"))["result"] == "2.0.0"
    assert call(ws, request("ver", version="1.0.0"))["result"] == "1.0.0"
    assert call(ws, request("ver", version="0.0.0"))["result"] == "2.0.0"


def test_disabled_version_is_refused_by_name(ws):
    assert call(ws, request("ver", version="3.0.0"))["error"] == "disabled function: ver version 3.0.0"


def test_async_call_acks_then_answers_once(ws):
    ack = call(ws, request("async_add", {"a": 1, "b": 2}, request_id="a1"))
    assert ack == {"request_id": "a1", "result": None, "success": True, "error": None,
                   "async": True, "has_more": False, "can_retry": False}
    final = json.loads(ws.recv(timeout=10))
    assert final["request_id"] == "a1" and final["result"] == 3 and final["async"] is False
    assert call(ws, request("ping", service="gateway"))["result"] == "pong"  # nothing else queued


def test_none_call_runs_without_answering(ws, stack):
    key = "record-test-mark"
    stack.redis.delete(key)
    ws.send(json.dumps(request("record", {"key": key}, request_id="n1")))
    from gateway_app.processes import wait_until

    wait_until(lambda: stack.redis.get(key) == b"done", 10, "fire-and-forget call ran")
    assert call(ws, request("ping", service="gateway", request_id="after"))["request_id"] == "after"


def test_none_call_with_bad_arguments_is_answered(ws):
    frame = call(ws, request("record", {"key": 5}, request_id="n2"))
    assert frame["request_id"] == "n2" and frame["error"].startswith("Invalid arguments: ")

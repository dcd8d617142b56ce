"""Response modes over real workers: the exact frame sequence of async, stream and none."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from gateway_app.processes import wait_until

from .conftest import call, frames_until_terminal, nothing_more, request

MODES = "modes"


def rq(request_type: str, args: dict | None = None, request_id="m1") -> dict:
    return request(request_type, args, request_id=request_id, service=MODES)


def frame(request_id, result=None, success=True, error=None, is_async=False, has_more=False, can_retry=False):
    return {"request_id": request_id, "result": result, "success": success, "error": error, "async": is_async,
            "has_more": has_more, "can_retry": can_retry}


ACK = frame("m1", is_async=True)
INIT = frame("m1", result="init", is_async=True, has_more=True)


def chunk(value, request_id="m1"):
    return frame(request_id, result=value, is_async=True, has_more=True)


@pytest.fixture
def ws(modes_stack):
    with modes_stack.gateway.connect() as socket:
        yield socket


def mark() -> str:
    return f"mark-{uuid.uuid4().hex[:8]}"


# -------------------------------------------------------------------------- async


def test_async_is_acknowledged_then_answered_once(ws):
    ws.send(json.dumps(rq("async_double", {"n": 21})))
    assert frames_until_terminal(ws) == [ACK, frame("m1", result=42)]
    assert nothing_more(ws, 0.5)


def test_async_error_comes_after_the_ack(ws):
    ws.send(json.dumps(rq("async_fail")))
    assert frames_until_terminal(ws) == [ACK, frame("m1", success=False, error="Internal Server Error")]


def test_async_timeout_is_one_retryable_error_and_the_late_result_never_arrives(ws):
    ws.send(json.dumps(rq("async_sleep", {"ms": 1200})))
    assert frames_until_terminal(ws) == [
        ACK, frame("m1", success=False, error="Request timed out", can_retry=True)]
    assert nothing_more(ws, 1.5)  # the function finishes meanwhile; its result is dropped


def test_many_async_calls_each_get_their_ack_first(ws):
    for i in range(30):
        ws.send(json.dumps(rq("async_double", {"n": i}, request_id=i)))
    seen: dict[int, list] = {}
    while sum(len(v) for v in seen.values()) < 60:
        frame_ = json.loads(ws.recv(timeout=10))
        seen.setdefault(frame_["request_id"], []).append(frame_)
    for i in range(30):
        assert [f["async"] for f in seen[i]] == [True, False], seen[i]
        assert seen[i][1]["result"] == 2 * i


# --------------------------------------------------------------------------- none


def test_none_sends_nothing_and_runs(ws, modes_stack):
    name = mark()
    ws.send(json.dumps(rq("none_mark", {"mark": name})))
    wait_until(lambda: modes_stack.redis.get(name) is not None, 10, "the none call ran")
    assert call(ws, request("ping", service="gateway", request_id="after"))["request_id"] == "after"


def test_none_errors_before_dispatch_are_still_answered(ws):
    assert call(ws, rq("none_mark", {}))["error"] == 'Invalid arguments: missing argument "mark"'


def test_a_failing_none_call_is_retried_by_its_worker_and_answers_nothing(ws, modes_stack):
    name = mark()
    ws.send(json.dumps(rq("none_fail", {"mark": name})))  # retry=2: three attempts
    wait_until(lambda: modes_stack.redis.get(name) == b"3", 10, "three attempts")
    assert nothing_more(ws, 1.0)
    assert modes_stack.redis.get(name) == b"3"


# ------------------------------------------------------------------------- stream


def test_stream_frames_in_order_then_an_end_frame(ws):
    ws.send(json.dumps(rq("count", {"n": 3})))
    assert frames_until_terminal(ws) == [INIT, chunk(0), chunk(1), chunk(2), frame("m1", is_async=True)]


def test_a_returned_value_is_the_last_chunk(ws):
    ws.send(json.dumps(rq("count_last", {"n": 2})))
    assert frames_until_terminal(ws) == [INIT, chunk(0), chunk(1), frame("m1", result="last", is_async=True)]


def test_an_exception_ends_the_stream_with_one_error_frame(ws):
    ws.send(json.dumps(rq("count_fail", {"n": 2})))
    assert frames_until_terminal(ws) == [INIT, chunk(0), chunk(1),
                                         frame("m1", success=False, error="Internal Server Error")]


def test_a_thousand_chunks_arrive_in_order(ws):
    ws.send(json.dumps(rq("count", {"n": 1000})))
    frames = frames_until_terminal(ws)
    assert frames[0] == INIT and frames[-1] == frame("m1", is_async=True)
    assert [f["result"] for f in frames[1:-1]] == list(range(1000))
    assert all(f["has_more"] and f["async"] for f in frames[1:-1])


def test_a_producer_that_is_not_a_generator_drives_the_stream_handle(ws):
    ws.send(json.dumps(rq("pushed", {"n": 50})))
    frames = frames_until_terminal(ws)
    assert [f["result"] for f in frames[1:-1]] == [{"i": i} for i in range(50)]
    assert frames[-1] == frame("m1", result={"done": 50}, is_async=True)


def test_a_handle_error_ends_the_stream(ws):
    ws.send(json.dumps(rq("pushed_error")))
    assert frames_until_terminal(ws) == [INIT, chunk("one"), frame("m1", success=False, error="Internal Server Error")]


def test_a_stream_that_outlives_its_timeout_ends_with_one_error_and_nothing_after(ws, modes_stack):
    name = mark()
    started = time.monotonic()
    ws.send(json.dumps(rq("endless", {"mark": name})))  # timeout 600 ms, a chunk every 50 ms
    frames = frames_until_terminal(ws)
    assert time.monotonic() - started >= 0.6
    assert frames[0] == INIT and all(f == chunk("tick") for f in frames[1:-1]) and len(frames) > 3
    assert frames[-1] == frame("m1", success=False, error="Request timed out", can_retry=True)
    assert nothing_more(ws, 1.0)
    # the worker stopped producing too: the generator was closed (its finally ran)
    wait_until(lambda: modes_stack.redis.get(f"{name}:closed") == b"yes", 5, "the generator is closed")


def test_every_mode_answers_errors_found_before_dispatch_at_once(ws):
    for request_type in ("async_double", "count", "none_mark"):
        answer = call(ws, rq(request_type, {"zz": 1}))
        assert answer["error"].startswith('Invalid arguments: unknown argument "zz"'), answer
        assert answer["async"] is False and answer["has_more"] is False

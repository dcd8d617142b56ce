"""Hooks end to end: function-level ``before_execute``/``after_execute`` on a real worker,
and gateway-level hooks loaded by ``genapi gateway`` from ``GENAPI_BEFORE_EXECUTE`` /
``GENAPI_AFTER_EXECUTE``, compared with a second gateway that has none."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .conftest import Stack, _databases, call, frames_until_terminal, request

SERVICE = "policies"
HOOK_REJECTED = "hook rejected: "


@pytest.fixture(scope="module")
def hook_stack(redis_server, tmp_path_factory):
    """One ``tests.services.policies`` worker; ``plain`` is a gateway without hooks of its
    own, ``hooked`` one with the module's gateway-level hooks and a 500 ms bound on them."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("hooks"))
    try:
        stack.worker = stack.start_worker("tests.services.policies")
        stack.plain = stack.start_gateway(stack.worker)
        stack.hooked = stack.start_gateway(stack.worker,
                                           GENAPI_BEFORE_EXECUTE="tests.services.policies:gateway_before",
                                           GENAPI_AFTER_EXECUTE="tests.services.policies:gateway_after",
                                           GENAPI_HOOK_TIMEOUT_MS="500")
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def ws(hook_stack):
    with hook_stack.plain.connect(user="alice", roles=("admin",), device="dev-1") as socket:
        yield socket


@pytest.fixture
def hooked_ws(hook_stack):
    with hook_stack.hooked.connect(user="alice", roles=("admin",)) as socket:
        yield socket


def rq(request_type: str, args: dict | None = None, request_id="h1", **extra) -> dict:
    return request(request_type, args, request_id=request_id, service=SERVICE, **extra)


def ok(request_id, result, is_async=False) -> dict:
    return {"request_id": request_id, "result": result, "success": True, "error": None, "async": is_async,
            "has_more": False, "can_retry": False}


def failed(request_id, error) -> dict:
    return {"request_id": request_id, "result": None, "success": False, "error": error, "async": False,
            "has_more": False, "can_retry": False}


def assert_rejected(frame: dict, reason: str) -> None:
    """A ``hook rejected: <reason>`` error that the client should not retry."""
    assert frame["success"] is False and frame["result"] is None and frame["can_retry"] is False, frame
    assert frame["error"].startswith(HOOK_REJECTED), frame
    assert reason in frame["error"][len(HOOK_REJECTED):], frame


def mark() -> str:
    return f"hook-{uuid.uuid4().hex[:10]}"


# ================================================================= before_execute


def test_a_before_hook_rewrites_the_arguments_the_function_gets(ws):
    assert call(ws, rq("rewritten", {"n": 21})) == ok("h1", {"n": 42})


def test_a_before_hook_gets_its_extra_args_appended(ws):
    assert call(ws, rq("offset", {"n": 5}))["result"] == {"n": 105, "label": "extra"}


@pytest.mark.parametrize("request_type", ["kept", "kept_true"], ids=["none", "true"])
def test_a_before_hook_returning_none_or_true_keeps_the_arguments(ws, request_type):
    assert call(ws, rq(request_type, {"n": 3})) == ok("h1", {"n": 3})


def test_a_before_hook_sees_the_request_info_of_the_session(ws):
    frame = call(ws, rq("info_seen", {"n": 1}, request_id="i-1", user_id="mallory", roles=["root"]))
    info = frame["result"]
    assert {"request_id", "user_id", "device_id", "roles", "service", "request_type", "version"} <= set(info), info
    assert info["request_id"] == "i-1"
    assert info["user_id"] == "alice" and info["roles"] == ["admin"] and info["device_id"] == "dev-1"
    assert info["service"] == SERVICE and info["request_type"] == "info_seen"


def test_a_before_hook_raising_genapierror_rejects_with_its_reason(ws, hook_stack):
    name = mark()
    frame = call(ws, rq("quota", {"n": 1, "mark": name}))
    assert_rejected(frame, "Quota exceeded")
    assert frame == failed("h1", 'hook rejected: "Quota exceeded"')
    assert hook_stack.redis.get(f"{name}:ran") is None  # the function did not run


def test_a_hook_rejection_is_not_retried(ws, hook_stack):
    """``quota`` has ``retry={"all_nodes": 2}``: the hook ran once and the answer is final."""
    name = mark()
    assert_rejected(call(ws, rq("quota", {"n": 1, "mark": name})), "Quota exceeded")
    assert int(hook_stack.redis.get(f"{name}:hook_calls")) == 1


def test_a_before_hook_raising_an_unexpected_exception_rejects(ws, hook_stack):
    name = mark()
    frame = call(ws, rq("crashy", {"n": 1, "mark": name}))
    assert_rejected(frame, "ValueError: boom")
    assert hook_stack.redis.get(f"{name}:ran") is None


def test_a_before_hook_returning_false_rejects(ws, hook_stack):
    name = mark()
    frame = call(ws, rq("refused", {"n": 1, "mark": name}))
    assert_rejected(frame, "rejected")
    assert hook_stack.redis.get(f"{name}:ran") is None


def test_a_before_hook_slower_than_hook_timeout_rejects_without_waiting_for_it(ws, hook_stack):
    name = mark()
    started = time.monotonic()
    frame = call(ws, rq("slow_before", {"n": 1, "mark": name}))
    elapsed = time.monotonic() - started
    assert_rejected(frame, "timed out")
    assert "300" in frame["error"], frame  # names the bound: hook timed out after 300ms
    assert elapsed < 1.8, f"answered after {elapsed:.2f} s: the 300 ms hook_timeout was not honoured"
    assert hook_stack.redis.get(f"{name}:ran") is None


def test_hook_rejections_do_not_trip_the_breakers(ws):
    """More rejections than any default breaker threshold (worker 5, service 10), then a
    call of the same service still runs."""
    for i in range(12):
        assert_rejected(call(ws, rq(("quota", "crashy", "refused")[i % 3], {"n": i}, request_id=i)), "")
    assert call(ws, rq("plain", {"n": 1}, request_id="ok")) == ok("ok", {"n": 1})


# ================================================================== after_execute


def test_an_after_hook_transforms_the_result(ws):
    assert call(ws, rq("after_wrapped", {"n": 4})) == ok("h1", {"wrapped": {"value": 4}, "by": "after_wrapped"})


def test_an_after_hook_gets_its_extra_args_appended(ws):
    assert call(ws, rq("after_tagged", {"n": 4}))["result"] == {"result": 5, "tag": "tag-x"}


def test_an_after_hook_that_raises_keeps_the_original_result(ws):
    assert call(ws, rq("after_crashy", {"n": 6})) == ok("h1", {"original": 6})


def test_an_after_hook_slower_than_hook_timeout_keeps_the_original_result(ws):
    started = time.monotonic()
    assert call(ws, rq("after_slow", {"n": 6})) == ok("h1", {"original": 6})
    assert time.monotonic() - started < 1.8


def test_an_after_hook_does_not_touch_an_error(ws):
    assert call(ws, rq("after_on_error")) == failed("h1", "Internal Server Error")


def test_before_and_after_hooks_together(ws):
    assert call(ws, rq("both", {"n": 10}))["result"] == {"wrapped": {"n": 20}, "by": "both"}


# ======================================================================== modes


def test_an_async_function_with_hooks_acks_then_answers_the_transformed_result(ws):
    ws.send(json.dumps(rq("async_both", {"n": 7}, request_id="a1")))
    assert frames_until_terminal(ws) == [ok("a1", None, is_async=True),
                                         ok("a1", {"wrapped": {"n": 14}, "by": "async_both"})]


def test_an_async_function_whose_hook_rejects_ends_with_one_error(ws, hook_stack):
    name = mark()
    ws.send(json.dumps(rq("async_quota", {"n": 1, "mark": name}, request_id="a2")))
    frames = frames_until_terminal(ws)
    assert_rejected(frames[-1], "Quota exceeded")
    assert frames[-1]["request_id"] == "a2" and frames[-1]["async"] is False
    assert frames[:-1] in ([], [ok("a2", None, is_async=True)])
    assert hook_stack.redis.get(f"{name}:ran") is None


def test_a_stream_gets_rewritten_arguments_and_unwrapped_chunks(ws):
    """The before hook doubles n; the after hook is not applied to a stream."""
    ws.send(json.dumps(rq("stream_both", {"n": 2}, request_id="s1")))
    frames = frames_until_terminal(ws)
    assert [f["result"] for f in frames] == ["init", 0, 1, 2, 3, None]
    assert frames[-1]["success"] is True and frames[-1]["has_more"] is False


# ================================================================== gateway level


def test_gateway_before_hook_rejects_on_its_gateway_only(hook_stack, hooked_ws):
    name = mark()
    frame = call(hooked_ws, rq("gw_echo", {"n": 1, "blocked": True, "mark": name}))
    assert frame == failed("h1", 'hook rejected: "blocked by gateway"')
    assert_rejected(frame, "blocked by gateway")
    assert hook_stack.redis.get(f"{name}:ran") is None  # nothing was dispatched
    with hook_stack.plain.connect() as ws:  # the other gateway has no such hook
        assert call(ws, rq("gw_echo", {"n": 1, "blocked": True}))["result"] == {"n": 1}


def test_gateway_before_hook_leaves_other_calls_alone(hooked_ws):
    assert call(hooked_ws, rq("gw_echo", {"n": 3, "blocked": False}))["result"] == {"audited": True, "n": 3}


def test_gateway_before_hook_replaces_the_arguments_sent_to_the_worker(hook_stack, hooked_ws):
    assert call(hooked_ws, rq("gw_echo", {"n": 3, "gw_double": True}))["result"] == {"audited": True, "n": 6}
    with hook_stack.plain.connect() as ws:
        assert call(ws, rq("gw_echo", {"n": 3, "gw_double": True}))["result"] == {"n": 3}


def test_gateway_before_hook_runs_after_argument_validation(hooked_ws):
    frame = call(hooked_ws, rq("gw_echo", {"n": "three", "blocked": True}))
    assert frame["error"].startswith("Invalid arguments: "), frame


def test_gateway_after_hook_transforms_sync_results_on_its_gateway_only(hook_stack, hooked_ws):
    assert call(hooked_ws, rq("gw_echo", {"n": 5})) == ok("h1", {"audited": True, "n": 5})
    assert call(hooked_ws, rq("gw_scalar"))["result"] == 7  # not a dict: unchanged
    with hook_stack.plain.connect() as ws:
        assert call(ws, rq("gw_echo", {"n": 5})) == ok("h1", {"n": 5})


def test_gateway_after_hook_transforms_async_results(hooked_ws):
    hooked_ws.send(json.dumps(rq("gw_async", {"n": 8}, request_id="ga")))
    assert frames_until_terminal(hooked_ws) == [ok("ga", None, is_async=True), ok("ga", {"audited": True, "n": 8})]


def test_gateway_after_hook_does_not_touch_errors(hooked_ws):
    assert call(hooked_ws, rq("gw_fail")) == failed("h1", "Internal Server Error")


def test_gateway_before_hook_rejection_of_an_async_call_is_answered_at_once(hook_stack, hooked_ws):
    """Found before dispatch: one error frame, no ack, nothing sent to a worker."""
    name = mark()
    frame = call(hooked_ws, rq("gw_async", {"n": 1, "blocked": True, "mark": name}, request_id="gb"))
    assert frame == failed("gb", 'hook rejected: "blocked by gateway"')
    assert call(hooked_ws, rq("gw_scalar", request_id="next")) == ok("next", 7)  # no late frame for "gb"
    assert hook_stack.redis.get(f"{name}:ran") is None


def test_gateway_before_hook_slower_than_its_bound_rejects(hook_stack, hooked_ws):
    """``GENAPI_HOOK_TIMEOUT_MS=500`` on the hooked gateway; the hook sleeps 2 s."""
    name = mark()
    started = time.monotonic()
    frame = call(hooked_ws, rq("gw_echo", {"n": 1, "gw_sleep": True, "mark": name}))
    elapsed = time.monotonic() - started
    assert_rejected(frame, "timed out")
    assert elapsed < 1.8, f"answered after {elapsed:.2f} s: GENAPI_HOOK_TIMEOUT_MS was not honoured"
    assert hook_stack.redis.get(f"{name}:ran") is None
    assert call(hooked_ws, rq("gw_echo", {"n": 2}, request_id="after")) == ok("after", {"audited": True, "n": 2})


def test_function_and_gateway_hooks_compose(hooked_ws):
    """The worker's before (doubles) and after (wraps) run, then the gateway's after."""
    assert call(hooked_ws, rq("both", {"n": 4}))["result"] == {"audited": True, "wrapped": {"n": 8}, "by": "both"}

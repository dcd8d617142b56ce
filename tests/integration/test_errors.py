"""Failures after dispatch: timeouts, exceptions, unserialisable results, detail mode."""

from __future__ import annotations

import json

import pytest

from .conftest import call, request

PING = request("ping", service="gateway", request_id="next")


def test_timeout_answers_once_and_drops_the_late_result(ws):
    frame = call(ws, request("slow", {"ms": 1200}, request_id="late"))
    assert frame == {"request_id": "late", "result": None, "success": False, "error": "Request timed out",
                     "async": False, "has_more": False, "can_retry": True}
    # the worker finishes ~0.9 s later; its reply must not reach the client
    ws.send(json.dumps(request("slow", {"ms": 1100}, request_id="late-2")))
    assert json.loads(ws.recv(timeout=10))["request_id"] == "late-2"
    assert call(ws, PING)["request_id"] == "next"


def test_call_within_its_timeout_succeeds(ws):
    assert call(ws, request("slow", {"ms": 10}))["result"] == "done"


def test_exception_is_an_internal_error_without_detail(ws):
    frame = call(ws, request("boom", request_id="b"))
    assert frame == {"request_id": "b", "result": None, "success": False, "error": "Internal Server Error",
                     "async": False, "has_more": False, "can_retry": False}


def test_genapi_error_is_an_internal_error_without_detail(ws):
    assert call(ws, request("refuse"))["error"] == "Internal Server Error"


def test_unserialisable_result_is_an_internal_error(ws):
    frame = call(ws, request("unserialisable"))
    assert frame["error"] == "Internal Server Error"
    assert call(ws, PING)["result"] == "pong"


@pytest.fixture(scope="module")
def detail_gateway(stack, sample_worker):

    gateway = stack.start_gateway(sample_worker, GENAPI_DETAIL_ERROR="1")
    return gateway


def test_detail_error_shows_the_reason(detail_gateway):
    with detail_gateway.connect() as ws:
        assert call(ws, request("boom"))["error"] == "Internal Server Error: ValueError: boom went the function"
        assert call(ws, request("refuse"))["error"] == "Internal Server Error: not today"
        unserialisable = call(ws, request("unserialisable"))["error"]
        assert unserialisable.startswith("Internal Server Error: result is not JSON serialisable")
        # detail mode changes only internal errors
        assert call(ws, request("nope"))["error"] == "unsupported function: nope version latest"

"""Liveness and retention: a function stays while a live worker serves it, and leaves the
registry by itself once none has for GENAPI_REGISTRY_RETENTION."""

from __future__ import annotations

import signal
import time

from gateway_app.processes import wait_until

from .conftest import call, request

FAST = {"GENAPI_HEARTBEAT_MS": "300", "GENAPI_NODE_TTL_MS": "1000"}
RETENTION = 3.0
HELLO = request("hello", {"name": "ada"}, service="late")


def listed(stack) -> list[str]:
    return [f"{f['service']}.{f['request_type']}" for f in stack.cli_json("admin", "list")]


def test_a_function_whose_workers_are_gone_is_pruned_after_the_retention(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.late", **FAST)
    gateway = fresh_stack.start_gateway(worker, GENAPI_REGISTRY_RETENTION=f"{RETENTION}", **FAST)
    # served by a live worker: kept well past the retention
    started = time.monotonic()
    while time.monotonic() - started < RETENTION * 2:
        assert "late.hello" in listed(fresh_stack)
    node = fresh_stack.node_of(worker)
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"
        worker.send_signal(signal.SIGTERM)  # it leaves the registry as its warm shutdown begins
        wait_until(lambda: not gateway.sees_node(node), 3, "the worker left", interval=0.05)
        gone = time.monotonic()
        # no live worker: unavailable at once, but still registered
        frame = call(ws, HELLO)
        assert (frame["error"], frame["can_retry"]) == ("Service temporarily unavailable", True)
        assert "late.hello" in listed(fresh_stack)
        # the retention, give or take one sweep (a quarter of it), plus margin
        wait_until(lambda: listed(fresh_stack) == [], RETENTION * 3, "the functions are pruned", interval=0.2)
        assert time.monotonic() - gone >= RETENTION / 2  # not at once: after about the retention
        assert call(ws, HELLO)["error"] == "unsupported function: hello version latest"
    assert fresh_stack.cli_json("pushed-services") == {}
    # a returning worker registers them again
    again = fresh_stack.start_worker("tests.services.late", **FAST)
    wait_until(lambda: fresh_stack.sees_worker(gateway, fresh_stack.node_of(again)), 10, "gateway sees it")
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"

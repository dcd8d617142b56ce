"""Workers join and leave the registry; the gateway follows without a restart."""

from __future__ import annotations

import json
import os
import signal
import time

from gateway_app.processes import wait_until

from .conftest import call, request

HELLO = request("hello", {"name": "ada"}, service="late", request_id="h")


def test_worker_started_after_the_gateway_becomes_callable(fresh_stack):
    gateway = fresh_stack.start_gateway()
    with gateway.connect() as ws:
        assert call(ws, HELLO)["error"] == "unsupported function: hello version latest"
        worker = fresh_stack.start_worker("tests.services.late")
        # the worker's heartbeat and its functions' push reach the gateway separately: wait for both
        wait_until(lambda: gateway.sees_node(fresh_stack.node_of(worker)) and "late.hello" in gateway.status()["tasks"],
                   10, "gateway sees the new worker and its functions")
        assert call(ws, HELLO)["result"] == "hello ada"


def _wait_for_unavailable(ws, deadline_s: float) -> float:
    """Seconds until a call answers `Service temporarily unavailable` (fails after the deadline)."""
    started = time.monotonic()
    while True:
        frame = call(ws, HELLO, timeout=15)
        if frame["error"] == "Service temporarily unavailable":
            assert frame["can_retry"] is True
            return time.monotonic() - started
        assert time.monotonic() - started < deadline_s, f"still answered {frame} after {deadline_s}s"


def test_stopped_worker_gives_service_unavailable_at_once(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.late")
    gateway = fresh_stack.start_gateway(worker)
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"
        assert fresh_stack.stop(worker) == 0  # warm shutdown leaves the registry
        assert fresh_stack.node_of(worker) is None
        assert _wait_for_unavailable(ws, deadline_s=3) < 3


def test_killed_worker_expires_within_its_ttl(fresh_stack):
    fast = {"GENAPI_HEARTBEAT_MS": "300", "GENAPI_NODE_TTL_MS": "1000"}
    worker = fresh_stack.start_worker("tests.services.late", **fast)
    gateway = fresh_stack.start_gateway(worker, **fast)
    node = fresh_stack.node_of(worker)
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"
        os.kill(worker.pid, signal.SIGKILL)  # no goodbye: only the heartbeat stops
        killed = time.monotonic()
        worker.wait(10)
        # TTL 1 s + the gateway's 1 s liveness poll, with margin
        wait_until(lambda: not gateway.sees_node(node), 4, "gateway drops the dead node", interval=0.1)
        assert time.monotonic() - killed < 4
        frame = call(ws, HELLO)
        assert frame["error"] == "Service temporarily unavailable" and frame["can_retry"] is True


def test_a_new_worker_replaces_a_stopped_one(fresh_stack):
    first = fresh_stack.start_worker("tests.services.late")
    gateway = fresh_stack.start_gateway(first)
    fresh_stack.stop(first)
    second = fresh_stack.start_worker("tests.services.late")
    assert fresh_stack.node_of(second) != fresh_stack.node_of(first)
    wait_until(lambda: gateway.sees_node(fresh_stack.node_of(second)), 10, "gateway sees the new worker")
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"


def test_two_workers_on_one_host_get_distinct_names_and_share_the_queue(fresh_stack):
    first = fresh_stack.start_worker("tests.services.late")
    second = fresh_stack.start_worker("tests.services.late")
    assert fresh_stack.node_of(first) != fresh_stack.node_of(second)
    gateway = fresh_stack.start_gateway(first, second)
    with gateway.connect() as ws:
        for i in range(10):
            assert call(ws, request("hello", {"name": str(i)}, service="late"))["result"] == f"hello {i}"


def test_function_only_some_workers_serve_is_routed_to_them(fresh_stack):
    """Rolling deploy: an old and a new worker share the service queue; calls to the new
    function go to the new worker's direct queue instead of timing out in the old one."""
    old = fresh_stack.start_worker("tests.services.late")
    new = fresh_stack.start_worker("tests.services.late_next")
    gateway = fresh_stack.start_gateway(old, new)
    with gateway.connect() as ws:
        for i in range(10):
            frame = call(ws, request("goodbye", {"name": str(i)}, service="late", request_id=i))
            assert frame["result"] == f"goodbye {i}", frame
        assert call(ws, HELLO)["result"] == "hello ada"


def test_periodic_refresh_catches_changes_without_a_notification(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.late")
    gateway = fresh_stack.start_gateway(worker, GENAPI_REFRESH_MS="500")
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"
        field = "late|hello|"
        config = json.loads(fresh_stack.redis.hget("genapi:functions", field))
        fresh_stack.redis.hset("genapi:functions", field, json.dumps({**config, "disabled": True}))
        started = time.monotonic()
        while call(ws, HELLO)["error"] != "unsupported function: hello version latest":
            assert time.monotonic() - started < 5, "the gateway never reloaded the registry"


def test_call_without_deadline_is_answered_when_its_worker_dies(fresh_stack):
    fast = {"GENAPI_HEARTBEAT_MS": "300", "GENAPI_NODE_TTL_MS": "1000"}
    worker = fresh_stack.start_worker("tests.services.late", **fast)
    gateway = fresh_stack.start_gateway(worker, **fast)
    with gateway.connect() as ws:
        ws.send(json.dumps(request("wait_forever", {"mark": "forever-started"}, service="late",
                                   request_id="forever")))
        wait_until(lambda: fresh_stack.redis.get("forever-started") is not None, 10, "the call started")
        os.kill(worker.pid, signal.SIGKILL)
        frame = json.loads(ws.recv(timeout=10))  # TTL 1 s + the 1 s liveness poll
        assert frame == {"request_id": "forever", "result": None, "success": False,
                         "error": "Service temporarily unavailable", "async": False, "has_more": False,
                         "can_retry": True}


def test_worker_leaves_when_shutdown_begins_and_finishes_its_call(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.late")
    gateway = fresh_stack.start_gateway(worker)
    node = fresh_stack.node_of(worker)
    with gateway.connect() as ws:
        ws.send(json.dumps(request("slow_hello", {"mark": "slow-started"}, service="late", request_id="slow")))
        wait_until(lambda: fresh_stack.redis.get("slow-started") is not None, 10, "the call started")
        worker.send_signal(signal.SIGTERM)
        # gone from the registry while the call still runs: no new calls are routed to it
        wait_until(lambda: not gateway.sees_node(node), 1.5, "the node leaves at once", interval=0.05)
        assert worker.poll() is None
        frame = json.loads(ws.recv(timeout=10))
        assert frame["request_id"] == "slow" and frame["result"] == "slow hello"
    assert worker.wait(15) == 0


def test_a_frozen_worker_leaves_within_three_heartbeats_and_is_used_again_when_it_returns(fresh_stack):
    heartbeat = 0.5  # the node TTL defaults to three heartbeats
    fast = {"GENAPI_HEARTBEAT_MS": str(int(heartbeat * 1000))}
    worker = fresh_stack.start_worker("tests.services.late", **fast)
    gateway = fresh_stack.start_gateway(worker, **fast)
    node = fresh_stack.node_of(worker)
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"
        os.kill(worker.pid, signal.SIGSTOP)  # alive but silent, as behind a network partition
        frozen = time.monotonic()
        try:
            # its entry expires within three heartbeat periods of the freeze (on the Redis clock)...
            seconds, micros = fresh_stack.redis.time()
            expires_ms = fresh_stack.redis.zscore("genapi:nodes", node)
            assert expires_ms - (seconds * 1000 + micros // 1000) <= 3 * heartbeat * 1000
            # ...and the gateway stops selecting it then (its poll adds a round trip)
            wait_until(lambda: not gateway.sees_node(node), 3 * heartbeat + 2, "the node leaves selection",
                       interval=0.02)
            assert time.monotonic() - frozen <= 3 * heartbeat + 1
            frame = call(ws, HELLO)
            assert (frame["error"], frame["can_retry"]) == ("Service temporarily unavailable", True)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        wait_until(lambda: gateway.sees_node(node), 5, "the returning worker heartbeats again", interval=0.05)
        for i in range(3):
            assert call(ws, request("hello", {"name": str(i)}, service="late"))["result"] == f"hello {i}"


def test_calls_a_stopping_worker_had_prefetched_are_answered_by_another(fresh_stack):
    """The worker keeps no unacked bookkeeping in Redis (``ack_emulation`` off): the calls a
    worker fetched but had not started go back to the queue when it shuts down warmly, and
    another worker answers them."""
    first = fresh_stack.start_worker("tests.services.late", options=["-P", "solo", "-l", "info"])
    gateway = fresh_stack.start_gateway(first)
    with gateway.connect() as ws:
        ws.send(json.dumps(request("slow_hello", {"mark": "prefetch-slow"}, service="late", request_id="slow")))
        wait_until(lambda: fresh_stack.redis.get("prefetch-slow") is not None, 10, "the slow call started")
        for i in range(3):
            ws.send(json.dumps(request("hello", {"name": str(i)}, service="late", request_id=i)))
        # the solo worker fetches up to 4 messages: the three calls wait in its memory, not in Redis
        wait_until(lambda: fresh_stack.redis.llen("genapi.late") == 0, 5, "the worker fetched the calls",
                   interval=0.05)
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0
        second = fresh_stack.start_worker("tests.services.late")
        wait_until(lambda: gateway.sees_node(fresh_stack.node_of(second)), 10, "gateway sees the new worker")
        frames = {}
        while len(frames) < 4:
            frame = json.loads(ws.recv(timeout=15))
            assert frame["request_id"] not in frames, frame
            frames[frame["request_id"]] = frame
    assert frames["slow"]["result"] == "slow hello"
    assert [frames[i]["result"] for i in range(3)] == ["hello 0", "hello 1", "hello 2"]

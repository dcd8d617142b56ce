"""Circuit breakers (GENAPI_BREAKERS) with a real Redis, real `genapi worker tests.services.flaky`
processes and two gateways sharing the breaker state: what trips them, what they answer, and
how they recover."""

from __future__ import annotations

import json
import time

import pytest

from .conftest import Stack, _databases, call, request

COOLDOWN_MS = 2000
UNAVAILABLE = "Service temporarily unavailable"
# the worker breaker is out of the way here: one worker, only the service breaker trips
BREAKERS = {"service_threshold": 3, "worker_threshold": 1000, "cooldown_ms": COOLDOWN_MS}


def rq(request_type: str, request_id="b") -> dict:
    return request(request_type, request_id=request_id, service="flaky")


OK, TOGGLE, DELIBERATE = rq("ok"), rq("toggle"), rq("deliberate")


def runs(stack: Stack, name: str | None = None) -> int:
    return int(stack.redis.get("flaky:runs" if name is None else f"flaky:runs:{name}") or 0)


def set_mode(stack: Stack, mode: str) -> None:
    stack.redis.set("flaky:mode", mode)


def breakers(stack: Stack, scope: str, node: str | None = None) -> list[dict]:
    pool = stack.cli_json("pool-status", GENAPI_BREAKERS=json.dumps(BREAKERS))
    return [b for b in pool["breakers"] if b["scope"] == scope and b["service"] == "flaky"
            and (node is None or b["node"] == node)]


def service_state(stack: Stack) -> tuple[str, int]:
    """(state, failures) of the flaky service breaker; closed with no failures if it has no entry yet."""
    found = breakers(stack, "service")
    assert len(found) <= 1, found
    return (found[0]["state"], found[0]["failures"]) if found else ("closed", 0)


def assert_unavailable(ws, req: dict) -> None:
    started = time.monotonic()
    frame = call(ws, req)
    elapsed = time.monotonic() - started
    assert frame["success"] is False and frame["error"] == UNAVAILABLE and frame["can_retry"] is True, frame
    assert elapsed < 1.0, f"took {elapsed:.2f}s"  # answered at once, not after a dispatch


def poll(ws, req: dict, predicate, within: float) -> dict:
    """Call until ``predicate(frame)``; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        frame = call(ws, req)
        if predicate(frame):
            return frame
        assert time.monotonic() < deadline, f"still {frame} after {within}s"
        time.sleep(0.05)


def recovered(stack: Stack) -> None:
    """Wait out any open breaker (a successful call closes it) on both gateways."""
    set_mode(stack, "ok")
    for gateway in stack.gateways:
        with gateway.connect() as ws:
            poll(ws, OK, lambda f: f["success"], within=COOLDOWN_MS / 1000 + 5)
    assert service_state(stack) == ("closed", 0)


@pytest.fixture(scope="module")
def breaker_stack(redis_server, tmp_path_factory):
    """One flaky worker and two gateways with BREAKERS, on a database of their own."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("breakers"))
    try:
        stack.worker = stack.start_worker("tests.services.flaky")
        stack.gateways = tuple(stack.start_gateway(stack.worker, GENAPI_BREAKERS=json.dumps(BREAKERS))
                               for _ in range(2))
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def healthy(breaker_stack):
    """The module stack, each test starting with every breaker closed and `toggle` working."""
    recovered(breaker_stack)
    yield breaker_stack
    set_mode(breaker_stack, "ok")


def test_a_failing_service_trips_on_both_gateways_and_recovers_after_the_cooldown(healthy):
    stack = healthy
    first, second = stack.gateways
    node = stack.node_of(stack.worker)
    set_mode(stack, "fail")
    with first.connect() as a, second.connect() as b:
        for ws in (a, b, a):  # failures through either gateway count together
            frame = call(ws, TOGGLE)
            assert frame["error"] == "Internal Server Error" and frame["can_retry"] is False, frame
        assert runs(stack, "toggle") == 3

        dispatched = runs(stack)
        for ws in (a, b):
            assert_unavailable(ws, TOGGLE)
            assert_unavailable(ws, OK)  # the breaker is the service's: every function of it
        assert runs(stack) == dispatched  # answered without dispatching

        pool = stack.cli_json("pool-status", GENAPI_BREAKERS=json.dumps(BREAKERS))
        [breaker] = [x for x in pool["breakers"] if x["scope"] == "service" and x["service"] == "flaky"]
        assert breaker["state"] == "open" and breaker["failures"] >= 3, breaker
        now_ms = time.time() * 1000
        assert now_ms < breaker["opened_until_ms"] <= now_ms + COOLDOWN_MS + 500, breaker
        assert pool["services"]["flaky"]["workers"] == [node]
        code, api_pool = first.admin("GET", "pool")
        assert code == 200 and api_pool["config"] == {"enabled": True, **BREAKERS}
        assert [x["state"] for x in api_pool["breakers"] if x["scope"] == "service" and x["service"] == "flaky"] \
            == ["open"]

        # after the cooldown one trial call goes through; it fails, so the breaker opens again
        frame = poll(a, TOGGLE, lambda f: f["error"] != UNAVAILABLE, within=COOLDOWN_MS / 1000 + 5)
        assert frame["error"] == "Internal Server Error", frame
        assert runs(stack, "toggle") == 4
        assert_unavailable(b, TOGGLE)
        assert_unavailable(a, OK)
        assert runs(stack, "toggle") == 4
        assert service_state(stack)[0] == "open"

        # the service is healthy again: after the cooldown the trial succeeds and closes the breaker
        set_mode(stack, "ok")
        frame = poll(b, TOGGLE, lambda f: f["error"] != UNAVAILABLE, within=COOLDOWN_MS / 1000 + 5)
        assert frame["result"] == "ok", frame
        assert service_state(stack) == ("closed", 0)
        for ws in (a, b):  # both gateways see it closed (the state is in Redis)
            poll(ws, OK, lambda f: f["success"], within=2)
            assert call(ws, TOGGLE)["result"] == "ok"


@pytest.mark.parametrize(("request_type", "error", "can_retry"), [
    ("boom", "Internal Server Error", False),
    ("slow", "Request timed out", True),
], ids=["exception", "timeout"])
def test_exceptions_and_timeouts_are_failures_that_trip_the_breaker(healthy, request_type, error, can_retry):
    stack = healthy
    first, second = stack.gateways
    with first.connect() as a, second.connect() as b:
        for i, ws in enumerate((a, b, a)):
            frame = call(ws, rq(request_type, request_id=i))
            assert frame["error"] == error and frame["can_retry"] is can_retry, frame
        assert runs(stack, request_type) == 3
        ok_runs = runs(stack, "ok")
        for ws in (a, b):
            assert_unavailable(ws, OK)
            assert_unavailable(ws, rq(request_type))
        assert runs(stack, "ok") == ok_runs and runs(stack, request_type) == 3
        assert service_state(stack)[0] == "open"
        frame = poll(b, OK, lambda f: f["error"] != UNAVAILABLE, within=COOLDOWN_MS / 1000 + 5)
        assert frame["result"] == "ok", frame
        assert service_state(stack) == ("closed", 0)
        assert call(a, OK)["result"] == "ok"


def test_an_open_breaker_paces_a_connection_that_keeps_calling_while_others_are_answered_at_once(healthy):
    stack = healthy
    first, _ = stack.gateways
    set_mode(stack, "fail")
    with first.connect() as a, first.connect() as other:
        for _ in range(3):
            assert call(a, TOGGLE)["error"] == "Internal Server Error"
        assert service_state(stack)[0] == "open"
        dispatched = runs(stack, "ok")
        started, count = time.monotonic(), 5
        for i in range(count):  # a client that resends at once, without waiting for answers
            a.send(json.dumps(rq("ok", request_id=i)))
        pong = call(other, request("ping", request_id="p", service="gateway"))
        assert pong["result"] == "pong" and time.monotonic() - started < 0.3  # another connection: at once
        frames = [json.loads(a.recv(timeout=10)) for _ in range(count)]
        spread = time.monotonic() - started
        assert [f["request_id"] for f in frames] == list(range(count))  # each answered once, in order
        assert all(f["error"] == UNAVAILABLE and f["can_retry"] is True for f in frames), frames
        # after the 1st..4th refusal in a row the next frame is read 50, 100, 200, 400 ms later (x 0.5-1.5)
        assert spread >= 0.35, f"refusals came back within {spread:.2f}s"
        assert runs(stack, "ok") == dispatched  # none was dispatched


def test_deliberate_errors_never_trip_the_breaker(healthy):
    stack = healthy
    first, second = stack.gateways
    before = runs(stack, "deliberate")
    with first.connect() as a, second.connect() as b:
        for i in range(4 * BREAKERS["service_threshold"]):
            frame = call(a if i % 2 else b, rq("deliberate", request_id=i))
            assert frame["error"] == "Internal Server Error", frame  # detail_error is off
            assert frame["can_retry"] is False
        assert runs(stack, "deliberate") - before == 4 * BREAKERS["service_threshold"]  # every one dispatched
        assert call(a, OK)["result"] == "ok" and call(b, OK)["result"] == "ok"
    assert service_state(stack) == ("closed", 0)


def test_a_failing_worker_is_skipped_while_its_breaker_is_open(fresh_stack):
    workers = [fresh_stack.start_worker("tests.services.flaky") for _ in range(2)]
    config = {"service_threshold": 1000, "worker_threshold": 2, "cooldown_ms": 60000}
    gateway = fresh_stack.start_gateway(*workers, GENAPI_BREAKERS=json.dumps(config))
    bad, good = (fresh_stack.node_of(w) for w in workers)
    set_mode(fresh_stack, f"fail:{bad}")  # toggle fails on that worker only
    with gateway.connect() as ws:
        deadline = time.monotonic() + 20
        while runs(fresh_stack, f"toggle:{bad}") < 2:  # the shared queue: either worker takes a call
            frame = call(ws, TOGGLE)
            assert frame["result"] == "ok" or frame["error"] == "Internal Server Error", frame
            assert time.monotonic() < deadline, "the failing worker never got two calls"
        [breaker] = breakers(fresh_stack, "worker", bad)
        assert breaker["state"] == "open" and breaker["failures"] >= 2, breaker
        assert [b["state"] for b in breakers(fresh_stack, "worker", good)] in ([], ["closed"])
        assert service_state(fresh_stack)[0] == "closed"

        served = runs(fresh_stack, f"toggle:{good}")
        for i in range(20):  # "any" still works: every call goes to the healthy worker
            assert call(ws, rq("toggle", request_id=i))["result"] == "ok"
        assert runs(fresh_stack, f"toggle:{bad}") == 2
        assert runs(fresh_stack, f"toggle:{good}") - served == 20
    pool = fresh_stack.cli_json("pool-status", GENAPI_BREAKERS=json.dumps(BREAKERS))
    assert sorted(pool["services"]["flaky"]["workers"]) == sorted([bad, good])

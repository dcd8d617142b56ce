"""Every telemetry event of ``workers.signals.EVENTS`` fires, with exactly its fields, in a
real gateway and a real worker: a receiver loaded through ``GENAPI_TELEMETRY_RECEIVERS``
(tests/services/telemetry_sink.py) writes what both processes emit to one file while the
test makes calls that set each event off."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gateway_app import processes
from workers.signals import EVENTS, NOT_EMITTED, ORIGINAL_EVENTS

from .conftest import call, frames_until_terminal, request

SINK = "tests.services.telemetry_sink:record"
COOLDOWN_MS = 800


def events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def names(path: Path) -> set[str]:
    return {record["event"] for record in events(path)}


def observed(request_type: str, args: dict | None = None, request_id: str = "r1") -> dict:
    return request(request_type, args or {}, request_id=request_id, service="observed")


@pytest.fixture(scope="module")
def recorded(redis_server, tmp_path_factory):
    """Run the scenario once; every test reads the events it recorded."""
    from .conftest import Stack, _databases

    logs = tmp_path_factory.mktemp("telemetry")
    sink = logs / "events.jsonl"
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", logs)
    common = dict(GENAPI_TELEMETRY_RECEIVERS=SINK, GENAPI_TEST_TELEMETRY_FILE=str(sink))
    try:
        worker = stack.start_worker("tests.services.observed", **common)
        limits = {"api_limits": [{"service": "observed", "request_type": "limited", "key": "user_id",
                                  "max_requests": 1, "window_ms": 60000}]}
        breakers = {"service_threshold": 2, "worker_threshold": 1000, "cooldown_ms": COOLDOWN_MS}
        gateway = stack.start_gateway(worker, GENAPI_RATE_LIMITS=json.dumps(limits),
                                      GENAPI_BREAKERS=json.dumps(breakers), GENAPI_SERVICE_CONFIGS="observed",
                                      GENAPI_PULL_INTERVAL="300ms", **common)
        run_scenario(stack, gateway, sink)
        yield events(sink)
    finally:
        stack.stop_all()


def run_scenario(stack, gateway, sink: Path) -> None:
    with gateway.connect(user="alice") as ws:
        assert call(ws, observed("ok"))["result"] == 1
        assert call(ws, observed("hooked"))["result"] == "hooked"  # the after hook's failure keeps the result
        assert call(ws, observed("wrapped"))["result"] == {"wrapped": "plain"}
        assert call(ws, observed("refused"))["error"] == 'hook rejected: "closed today"'
        ws.send(json.dumps(observed("count", request_id="s1")))
        assert [f["result"] for f in frames_until_terminal(ws)] == ["init", 0, 1, 2, None]
        assert call(ws, observed("limited", request_id="l1"))["success"] is True
        assert call(ws, observed("limited", request_id="l2"))["error"].startswith("Rate limit exceeded")
        status, _ = gateway.admin("POST", "rate-limits/reset", {"key": "alice", "service": "observed",
                                                                 "request_type": "limited", "key_type": "user_id"})
        assert status == 200
        # boom fails twice (one retry): the service's breaker (threshold 2) opens
        assert call(ws, observed("boom", request_id="b1"))["error"] == "Internal Server Error"
        refused = call(ws, observed("ok", request_id="o2"))
        assert refused["error"] == "Service temporarily unavailable" and refused["can_retry"] is True
        # after the cooldown one trial call goes through, succeeds and closes the breaker
        deadline = time.monotonic() + 10
        while call(ws, observed("ok", request_id="o3"))["success"] is not True:
            assert time.monotonic() < deadline, "the breaker never let a trial call through"
            time.sleep(0.1)
        owner = {"group_id": "g-telemetry", "group_type": "public"}
        assert call(ws, request("create_group", owner, service="relay"))["success"] is True
        with gateway.connect(user="bob") as bob:
            assert call(bob, request("join_group", {"group_id": "g-telemetry"}, service="relay"))["success"]
            assert call(ws, request("send", {"group_id": "g-telemetry", "message": "hi"}, service="relay"))["success"]
            assert json.loads(bob.recv(timeout=5))["result"]["message"] == "hi"
    for verb in ("disable", "enable", "delete"):
        status, _ = gateway.admin("POST", f"functions/{verb}", {"service": "observed", "request_type": "spare"})
        assert status == 200, verb
    second = stack.start_worker("tests.services.sample")
    processes.wait_until(lambda: "worker.joined" in names(sink) and _joined(sink, second, stack), 10,
                         "the gateway sees the second worker")
    stack.stop(second)
    processes.wait_until(lambda: "worker.left" in names(sink), 15, "the gateway sees the second worker leave")
    wanted = {"config.pull.stop", "connection.close", "relay.delivered", "worker_pool.circuit_breaker.close"}
    try:
        processes.wait_until(lambda: wanted <= names(sink), 10, "the last events")
    except TimeoutError:
        raise AssertionError(f"never recorded: {sorted(wanted - names(sink))}") from None


def _joined(sink: Path, worker, stack) -> bool:
    node = stack.node_of(worker)
    return any(r["event"] == "worker.joined" and r["fields"]["node_id"] == node for r in events(sink))


def test_the_list_matches_the_original_plus_ours():
    assert len(ORIGINAL_EVENTS) == 30
    assert {name.split(".")[0] for name in ORIGINAL_EVENTS} == {"executor", "rate_limiter", "hook", "worker_pool",
                                                                 "config"}
    assert set(NOT_EMITTED) <= set(EVENTS)


def test_every_event_fires_with_exactly_its_fields(recorded):
    seen = {record["event"] for record in recorded}
    expected = set(EVENTS) - set(NOT_EMITTED)
    assert expected - seen == set(), f"never fired: {sorted(expected - seen)}"
    assert seen - set(EVENTS) == set()
    for record in recorded:
        assert set(record["fields"]) == set(EVENTS[record["event"]]), record


def test_durations_are_seconds_and_times_are_nanoseconds(recorded):
    for record in recorded:
        fields = record["fields"]
        if "duration" in fields:
            assert isinstance(fields["duration"], float) and 0 <= fields["duration"] < 30, record
        if "system_time" in fields:
            assert abs(fields["system_time"] / 1e9 - time.time()) < 600, record


def of(recorded, event_name: str, /, **match) -> list[dict]:
    return [r["fields"] for r in recorded if r["event"] == event_name and all(r["fields"].get(k) == v
                                                                        for k, v in match.items())]


def test_request_events_say_how_each_call_ended(recorded):
    assert of(recorded, "executor.request.start", service="observed", request_type="ok", user_id="alice")
    stop = of(recorded, "executor.request.stop", request_type="ok", outcome="ok")[0]
    assert stop["success"] is True and stop["async"] is False and stop["mode"] == "sync" and stop["node"]
    assert of(recorded, "executor.request.stop", request_type="count", mode="stream", outcome="ok")[0]["async"]
    assert of(recorded, "executor.request.stop", request_type="limited", outcome="rate_limited")
    assert of(recorded, "executor.request.stop", request_type="ok", outcome="breaker_open")
    crashed = of(recorded, "executor.request.exception", request_type="boom")[0]
    assert crashed["kind"] == "error" and "boom" in crashed["reason"]
    assert sum(r["count"] for r in of(recorded, "stream.chunks", request_type="count")) == 3


def test_retry_breaker_and_limiter_events_carry_their_facts(recorded):
    retry = of(recorded, "executor.retry", request_type="boom")[0]
    assert retry["attempt"] == 1 and retry["mode"] == "all_nodes" and 0 < retry["backoff"] < 5
    assert of(recorded, "executor.retry.exhausted", request_type="boom")[0]["last_error"].startswith("error")
    opened = of(recorded, "worker_pool.circuit_breaker.open", pool_name="service:observed")[0]
    assert opened["consecutive_failures"] == 2
    assert of(recorded, "worker_pool.task.rejected", pool_name="service:observed", reason="circuit_open")
    states = [r["state"] for r in of(recorded, "breaker.state_change", name="service:observed")]
    assert states[:1] == ["open"] and "closed" in states
    exceeded = of(recorded, "rate_limiter.exceeded")[0]
    assert exceeded["scope"] == "api" and exceeded["max_requests"] == 1 and 55 < exceeded["retry_after"] <= 60
    assert {r["result"] for r in of(recorded, "rate_limiter.check")} >= {"ok", "exceeded"}
    assert of(recorded, "rate_limiter.reset", key="alice", scope="api", rate_limit_key="user_id")


def test_worker_and_hook_events_come_from_the_worker(recorded):
    task = of(recorded, "worker_pool.task.stop", task="observed.ok")[0]
    assert task["outcome"] == "result" and task["pool_name"].startswith("genapi-")
    assert of(recorded, "worker_pool.task.exception", task="observed.boom")[0]["reason"].startswith("ValueError")
    assert of(recorded, "hook.before.stop", function="passes", type="before", module="tests.services.observed")
    assert of(recorded, "hook.before.exception", function="refuses", kind="error")
    assert of(recorded, "hook.after.exception", function="breaks", kind="error")
    assert of(recorded, "hook.after.stop", function="wraps", type="after")
    gateway_pid = {r["pid"] for r in recorded if r["event"] == "executor.request.stop"}
    worker_pid = {r["pid"] for r in recorded if r["event"] == "worker_pool.task.stop"}
    assert gateway_pid and worker_pid and not gateway_pid & worker_pid


def test_registry_relay_and_connection_events(recorded):
    assert of(recorded, "config.push", service="observed")[0]["count"] == 8
    assert of(recorded, "config.batch_add", service="observed")
    assert of(recorded, "config.add", service="observed", request_type="spare")
    for verb in ("disable", "enable", "delete"):
        assert of(recorded, f"config.{verb}", service="observed", request_type="spare"), verb
    assert of(recorded, "config.pull.start", service="observed")
    assert of(recorded, "relay.delivered", group_id="g-telemetry")[0]["recipients"] == 1
    assert of(recorded, "connection.open", user_id="alice", public=False)
    assert of(recorded, "connection.close", user_id="alice")[0]["requests"] >= 10
    assert of(recorded, "worker.left")[0]["services"] == ["sample"]

"""Retry (reference §7) and lost workers: attempts, where they run, one terminal frame."""

from __future__ import annotations

import json
import uuid

from .conftest import call, frames_until_terminal, nothing_more, request

FAST = {"GENAPI_HEARTBEAT_MS": "300", "GENAPI_NODE_TTL_MS": "900"}


def rq(request_type: str, name: str, request_id="r1", **args) -> dict:
    return request(request_type, {"mark": name, **args}, request_id=request_id, service="modes")


def mark() -> str:
    return f"retry-{uuid.uuid4().hex[:8]}"


def attempts(stack, name: str) -> list[str]:
    """The node of each attempt, in order."""
    return [n.decode() for n in stack.redis.lrange(f"{name}:nodes", 0, -1)]


def test_an_error_is_retried_until_an_attempt_succeeds_on_another_worker(modes_stack):
    name = mark()
    with modes_stack.gateway.connect() as ws:
        frame = call(ws, rq("fail_times", name, failures=2), timeout=20)
        assert frame["success"] is True and frame["result"] == 3
        assert nothing_more(ws, 0.5)
    nodes = attempts(modes_stack, name)
    assert len(nodes) == 3
    assert all(a != b for a, b in zip(nodes, nodes[1:], strict=False)), nodes  # all_nodes: another worker


def test_retry_n_makes_one_plus_n_attempts_then_one_error(modes_stack):
    name = mark()
    with modes_stack.gateway.connect() as ws:
        frame = call(ws, rq("always_fail", name), timeout=20)  # retry=3
        assert (frame["success"], frame["error"], frame["can_retry"]) == (False, "Internal Server Error", False)
        assert nothing_more(ws, 0.5)
    assert len(attempts(modes_stack, name)) == 4


def test_same_node_retries_go_back_to_the_same_worker(modes_stack):
    name = mark()
    with modes_stack.gateway.connect() as ws:
        assert call(ws, rq("same_node_fail", name), timeout=20)["success"] is False
    nodes = attempts(modes_stack, name)
    assert len(nodes) == 3 and len(set(nodes)) == 1


def test_without_retry_one_attempt(modes_stack):
    name = mark()
    with modes_stack.gateway.connect() as ws:
        assert call(ws, rq("no_retry_fail", name))["error"] == "Internal Server Error"
    assert len(attempts(modes_stack, name)) == 1


def test_validation_errors_are_never_retried(modes_stack):
    name = mark()
    with modes_stack.gateway.connect() as ws:
        frame = call(ws, request("fail_times", {"mark": name}, service="modes"))
        assert frame["error"] == 'Invalid arguments: missing argument "failures"'
    assert attempts(modes_stack, name) == []


def _two_workers(stack):
    workers = [stack.start_worker("tests.services.modes", **FAST) for _ in range(2)]
    return workers, stack.start_gateway(*workers, **FAST)


def test_a_killed_worker_is_retried_on_the_other_one_and_answered_once(fresh_stack):
    workers, gateway = _two_workers(fresh_stack)
    name = mark()
    with gateway.connect() as ws:
        frame = call(ws, rq("die_then_retry", name), timeout=20)
        nodes = attempts(fresh_stack, name)
        assert frame["success"] is True and frame["result"] == nodes[1] != nodes[0], (frame, nodes)
        assert nothing_more(ws, 1.0)
    assert sum(w.poll() is not None for w in workers) == 1  # the first attempt's worker died


def test_a_killed_worker_without_retry_gives_exactly_one_terminal_frame_in_every_mode(fresh_stack):
    workers, gateway = _two_workers(fresh_stack)
    with gateway.connect() as ws:
        ws.send(json.dumps(rq("die_sync", mark(), request_id="sync")))
        [terminal] = frames_until_terminal(ws, timeout=20)
        assert terminal["success"] is False and terminal["can_retry"] is True, terminal
        assert terminal["error"] in ("Request timed out", "Service temporarily unavailable")
        assert nothing_more(ws, 1.0)

    workers, gateway = _two_workers(fresh_stack)
    with gateway.connect() as ws:
        ws.send(json.dumps(rq("die_async", mark(), request_id="async")))
        ack, terminal = frames_until_terminal(ws, timeout=20)
        assert ack["async"] is True and terminal["async"] is False and terminal["can_retry"] is True, terminal
        assert nothing_more(ws, 1.0)

    workers, gateway = _two_workers(fresh_stack)
    with gateway.connect() as ws:
        ws.send(json.dumps(rq("die_stream", mark(), request_id="stream")))
        frames = frames_until_terminal(ws, timeout=20)
        assert [f["result"] for f in frames[:2]] == ["init", "before"]
        assert len(frames) == 3 and frames[2]["success"] is False and frames[2]["can_retry"] is True, frames
        assert frames[2]["error"] == "Service temporarily unavailable"  # the stream's worker was lost
        assert nothing_more(ws, 1.0)


def test_a_stream_is_retried_only_before_its_first_chunk(modes_stack):
    with modes_stack.gateway.connect() as ws:
        name = mark()
        ws.send(json.dumps(rq("stream_retry", name, chunks_first=False)))
        assert [f["result"] for f in frames_until_terminal(ws, timeout=20)] == ["init", "done on attempt 2", None]
        assert len(attempts(modes_stack, name)) == 2

        name = mark()
        ws.send(json.dumps(rq("stream_retry", name, chunks_first=True)))
        frames = frames_until_terminal(ws, timeout=20)
        assert [f["result"] for f in frames] == ["init", "attempt 1", None]  # no chunk twice
        assert frames[-1]["error"] == "Internal Server Error"
        assert len(attempts(modes_stack, name)) == 1

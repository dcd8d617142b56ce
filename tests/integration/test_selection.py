"""Node selection with two real workers (distinct node names on one host)."""

from __future__ import annotations

import os
import signal

from gateway_app.processes import wait_until

from .conftest import call, request

FAST = {"GENAPI_HEARTBEAT_MS": "300", "GENAPI_NODE_TTL_MS": "900"}


def where(ws, request_type: str, args: dict | None = None, request_id="s1") -> str:
    frame = call(ws, request(request_type, args, request_id=request_id, service="modes"))
    assert frame["success"] is True, frame
    return frame["result"]


def nodes_of(stack) -> list[str]:
    return [stack.node_of(worker) for worker in stack.workers]


def test_round_robin_alternates_strictly(modes_stack):
    with modes_stack.gateway.connect() as ws:
        seen = [where(ws, "where_round_robin", request_id=i) for i in range(8)]
    assert set(seen) == set(nodes_of(modes_stack))
    assert all(a != b for a, b in zip(seen, seen[1:], strict=False)), seen


def test_random_uses_every_live_worker(modes_stack):
    with modes_stack.gateway.connect() as ws:
        seen = {where(ws, "where_random", request_id=i) for i in range(40)}
    assert seen == set(nodes_of(modes_stack))


def test_any_goes_through_the_shared_queue_to_a_live_worker(modes_stack):
    with modes_stack.gateway.connect() as ws:
        assert where(ws, "where_any") in nodes_of(modes_stack)


def test_hashes_choose_the_same_worker_from_every_gateway(modes_stack):
    other = modes_stack.start_gateway(*modes_stack.workers)
    with modes_stack.gateway.connect() as first, other.connect() as second:
        for request_id in ("a", "b", "c", 7, "zz"):
            chosen = where(first, "where_hash", request_id=request_id)
            assert where(first, "where_hash", request_id=request_id) == chosen
            assert where(second, "where_hash", request_id=request_id) == chosen
        by_key = {}
        for key in ("alice", "bob", "carol", "dave", "erin", "frank"):
            by_key[key] = where(first, "where_key", {"k": key})
            assert where(second, "where_key", {"k": key}, request_id="other") == by_key[key]
    assert set(by_key.values()) == set(nodes_of(modes_stack))  # six keys spread over both workers
    modes_stack.stop(other.process)


def test_a_custom_selector_chooses(modes_stack):
    with modes_stack.gateway.connect() as ws:
        assert {where(ws, "where_custom", request_id=i) for i in range(5)} == {max(nodes_of(modes_stack))}


def test_sticky_survives_a_gateway_restart_and_moves_when_its_worker_dies(fresh_stack):
    workers = [fresh_stack.start_worker("tests.services.modes", **FAST) for _ in range(2)]
    gateway = fresh_stack.start_gateway(*workers, **FAST)
    with gateway.connect() as ws:
        pinned = where(ws, "where_sticky", {"k": "alice"})
        assert {where(ws, "where_sticky", {"k": "alice"}, request_id=i) for i in range(10)} == {pinned}
    fresh_stack.stop(gateway.process)
    gateway = fresh_stack.start_gateway(*workers, **FAST)
    with gateway.connect() as ws:
        assert where(ws, "where_sticky", {"k": "alice"}) == pinned  # the mapping lives in Redis
        victim = next(w for w in workers if fresh_stack.node_of(w) == pinned)
        os.kill(victim.pid, signal.SIGKILL)
        wait_until(lambda: not gateway.sees_node(pinned), 5, "the dead worker leaves selection")
        moved = where(ws, "where_sticky", {"k": "alice"})
        assert moved != pinned
        assert {where(ws, "where_sticky", {"k": "alice"}, request_id=i) for i in range(5)} == {moved}


def test_first_and_last_fail_over(fresh_stack):
    older = fresh_stack.start_worker("tests.services.modes", **FAST)
    newer = fresh_stack.start_worker("tests.services.modes", **FAST)
    gateway = fresh_stack.start_gateway(older, newer, **FAST)
    older_node, newer_node = fresh_stack.node_of(older), fresh_stack.node_of(newer)
    with gateway.connect() as ws:
        assert {where(ws, "where_first", request_id=i) for i in range(5)} == {older_node}
        assert {where(ws, "where_last", request_id=i) for i in range(5)} == {newer_node}
        os.kill(older.pid, signal.SIGKILL)
        wait_until(lambda: not gateway.sees_node(older_node), 5, "the first worker leaves selection")
        assert where(ws, "where_first") == newer_node  # the hot standby takes over
        assert where(ws, "where_last") == newer_node

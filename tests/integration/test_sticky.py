"""``{"sticky": key}`` node selection against a real Redis: the value's worker is remembered
(shared by every gateway process), refreshed on use, and moves when that worker is gone."""

from __future__ import annotations

import pytest

from gateway_app.selection import Choice, NodeSelector
from workers.funconfig import load_funconfig
from workers.protocol import Keys
from workers.registry import NodeInfo

TTL = 100
STICKY_KEYS = "genapi:sticky:*"


def config(key: str = "user"):
    return load_funconfig({"service": "svc", "request_type": "add", "choose_node_mode": {"sticky": key}})


def node(node_id: str) -> NodeInfo:
    return NodeInfo(node_id, frozenset({"svc"}), frozenset({"svc.add"}), f"{node_id}.dq2", expires_ms=2**62)


NODES = [node("n1"), node("n2"), node("n3")]


def request(request_id="r", user_id="alice", **args) -> dict:
    return {"request_id": request_id, "args": args, "service": "svc", "request_type": "add", "user_id": user_id,
            "device_id": None}


@pytest.fixture
def selector(redis_db):
    return NodeSelector(redis_db, Keys(), sticky_ttl=TTL)


def remembered(redis_db) -> dict[bytes, bytes]:
    return {key: redis_db.get(key) for key in redis_db.scan_iter(STICKY_KEYS)}


def test_the_same_value_goes_to_the_same_node_from_every_gateway(selector, redis_db):
    first = selector.select(config(), NODES, 3, request(user="u1"))
    other_gateway = NodeSelector(redis_db, Keys(), sticky_ttl=TTL)
    for i in range(20):
        assert selector.select(config(), NODES, 3, request(f"r{i}", user="u1")) == first
        assert other_gateway.select(config(), list(reversed(NODES)), 3, request(f"r{i}", user="u1")) == first
    assert first == Choice(f"{first.node}.dq2", first.node)
    assert list(remembered(redis_db).values()) == [first.node.encode()]


def test_different_values_are_remembered_separately(selector, redis_db):
    for i in range(10):
        selector.select(config(), NODES, 3, request(user=f"u{i}"))
    assert len(remembered(redis_db)) == 10


def test_a_remembered_node_that_is_gone_is_replaced_and_the_new_one_remembered(selector, redis_db):
    gone = selector.select(config(), NODES, 3, request(user="u1")).node
    alive = [n for n in NODES if n.node_id != gone]
    moved = selector.select(config(), alive, 2, request(user="u1")).node
    assert moved != gone
    assert list(remembered(redis_db).values()) == [moved.encode()]
    # the old node coming back does not take the value back
    for _ in range(10):
        assert selector.select(config(), NODES, 3, request(user="u1")).node == moved


def test_each_use_refreshes_the_ttl(selector, redis_db):
    selector.select(config(), NODES, 3, request(user="u1"))
    [key] = remembered(redis_db)
    assert 0 < redis_db.ttl(key) <= TTL
    redis_db.expire(key, 5)  # as if most of the TTL had passed
    selector.select(config(), NODES, 3, request(user="u1"))
    assert TTL - 10 < redis_db.ttl(key) <= TTL


@pytest.mark.parametrize("args", [{}, {"user": None}, {"user": False}])
def test_without_a_value_the_node_is_random_and_nothing_is_stored(selector, redis_db, args):
    mode = config("user")
    chosen = {selector.select(mode, NODES, 3, request(user_id=None, **args)).node for _ in range(100)}
    assert chosen == {"n1", "n2", "n3"}
    assert remembered(redis_db) == {}


def test_the_requests_own_field_is_the_value_when_no_argument_has_it(selector, redis_db):
    mode = config("user_id")
    first = selector.select(mode, NODES, 3, request(user_id="alice")).node
    for _ in range(10):
        assert selector.select(mode, NODES, 3, request(user_id="alice")).node == first
    assert list(remembered(redis_db).values()) == [first.encode()]

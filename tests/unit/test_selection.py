"""gateway_app.selection: the node selection modes that need no Redis (``client=None``).
``{"sticky": key}`` is in tests/integration/test_sticky.py."""

from __future__ import annotations

import random
import zlib

import pytest

from gateway_app.errors import Rejected
from gateway_app.selection import Choice, NodeSelector, stable_hash
from workers.funconfig import load_funconfig
from workers.protocol import Keys
from workers.registry import NodeInfo

HERE = "tests.unit.test_selection"


def config(mode, request_type: str = "add"):
    return load_funconfig({"service": "svc", "request_type": request_type, "choose_node_mode": mode})


def node(node_id: str, started: float = 0.0) -> NodeInfo:
    return NodeInfo(node_id, frozenset({"svc"}), frozenset({"svc.add"}), f"{node_id}.dq2", expires_ms=2**62,
                    started=started)


NODES = [node("n1"), node("n2"), node("n3")]


def request(request_id="r", **args) -> dict:
    return {"request_id": request_id, "args": args, "service": "svc", "request_type": "add", "user_id": "alice",
            "device_id": None}


def selector() -> NodeSelector:
    return NodeSelector(None, Keys())


def direct(node_id: str) -> Choice:
    return Choice(f"{node_id}.dq2", node_id)


# ------------------------------------------------------------------ custom selectors (imported by path)


def pick(nodes: list[NodeInfo], request: dict):
    """Chooses ``args.want``; records what it was given in the request."""
    request["given"] = [n.node_id for n in nodes]
    return request["args"]["want"]


def pick_info(nodes: list[NodeInfo], request: dict) -> NodeInfo:
    return nodes[-1]


def broken(nodes: list[NodeInfo], request: dict):
    raise RuntimeError("selector bug")


# ------------------------------------------------------------------ any


def test_any_uses_the_service_queue_when_every_service_node_serves_the_task():
    assert selector().select(config("any"), NODES, len(NODES), request()) == Choice("genapi.svc")


def test_any_uses_a_serving_nodes_direct_queue_during_a_rolling_deploy():
    serving = NODES[:2]
    for _ in range(50):
        choice = selector().select(config("any"), serving, len(NODES), request())
        assert choice in (direct("n1"), direct("n2"))


def test_any_needs_no_request_facts():
    assert selector().select(config("any"), NODES, len(NODES), None) == Choice("genapi.svc")


# ------------------------------------------------------------------ random, round robin, hash


def test_random_chooses_only_serving_nodes_and_each_of_them():
    chosen = {selector().select(config("random"), NODES[:2], 3, request()) for _ in range(200)}
    assert chosen == {direct("n1"), direct("n2")}


def test_round_robin_alternates_strictly_per_task():
    nodes, add, sub = selector(), config("round_robin"), config("round_robin", request_type="sub")
    picked = []
    for _ in range(3):
        picked.append(nodes.select(add, NODES, 3, request()).node)
        nodes.select(sub, NODES, 3, request())  # another function's counter
        picked.append(nodes.select(add, list(reversed(NODES)), 3, request()).node)  # order given does not matter
    assert picked == ["n1", "n2", "n3", "n1", "n2", "n3"]


def test_round_robin_counters_belong_to_one_selector():
    first, second = selector(), selector()
    assert first.select(config("round_robin"), NODES, 3, request()).node == "n1"
    assert second.select(config("round_robin"), NODES, 3, request()).node == "n1"


def test_hash_of_the_request_id_is_deterministic_and_ignores_the_node_order():
    for request_id in ["a", "b", 7, ["x", 1], {"k": "v"}]:
        expected = sorted(NODES, key=lambda n: n.node_id)[stable_hash(request_id) % 3].node_id
        for order in (NODES, list(reversed(NODES)), random.sample(NODES, 3)):
            choice = selector().select(config("hash"), order, 3, request(request_id))
            assert choice == direct(expected)


def test_hash_spreads_request_ids_over_the_nodes():
    chosen = {selector().select(config("hash"), NODES, 3, request(f"id-{i}")).node for i in range(60)}
    assert chosen == {"n1", "n2", "n3"}


def test_hash_of_an_argument_follows_its_value_not_the_request_id():
    mode = {"hash": "user"}
    choices = {selector().select(config(mode), random.sample(NODES, 3), 3, request(f"r{i}", user="u1"))
               for i in range(20)}
    assert choices == {direct(sorted(["n1", "n2", "n3"])[stable_hash("u1") % 3])}


def test_hash_of_a_missing_argument_chooses_among_serving_nodes():
    chosen = {selector().select(config({"hash": "user"}), NODES[1:], 3, request()) for _ in range(100)}
    assert chosen == {direct("n2"), direct("n3")}


# ------------------------------------------------------------------ first and last


def test_first_is_the_longest_running_node_and_last_the_newest():
    nodes = [node("n1", started=30.0), node("n2", started=10.0), node("n3", started=20.0)]
    for order in (nodes, list(reversed(nodes))):
        assert selector().select(config("first"), order, 3, request()) == direct("n2")
        assert selector().select(config("last"), order, 3, request()) == direct("n1")


def test_first_and_last_break_ties_by_node_id():
    nodes = [node("b", 5.0), node("a", 5.0), node("c", 5.0)]
    assert selector().select(config("first"), nodes, 3, request()).node == "a"
    assert selector().select(config("last"), nodes, 3, request()).node == "c"


# ------------------------------------------------------------------ custom selectors


def test_a_custom_selector_gets_the_live_nodes_and_the_request():
    facts = request(want="n3")
    assert selector().select(config(f"{HERE}:pick"), list(reversed(NODES)), 3, facts) == direct("n3")
    assert facts["given"] == ["n1", "n2", "n3"]


def test_a_custom_selector_may_return_the_node_itself():
    assert selector().select(config(f"{HERE}:pick_info"), NODES, 3, request()) == direct("n3")


@pytest.mark.parametrize("mode, facts", [
    (f"{HERE}:pick", request(want="gone")),
    (f"{HERE}:pick", request(want=None)),
    (f"{HERE}:broken", request()),
    ("tests.unit.no_such_module:pick", request()),
    (f"{HERE}:no_such_function", request()),
])
def test_a_selector_that_fails_or_chooses_a_node_that_is_not_live_is_rejected(mode, facts):
    with pytest.raises(Rejected) as rejected:
        selector().select(config(mode), NODES, 3, facts)
    assert rejected.value.code == "node_selection_failed"
    assert rejected.value.error == "Internal Server Error" and rejected.value.can_retry is False


@pytest.mark.parametrize("mode", ["any", "random", "round_robin", "hash", "first", "last", {"hash": "user"},
                                  f"{HERE}:pick"])
def test_no_serving_node_is_rejected_as_unavailable(mode):
    with pytest.raises(Rejected) as rejected:
        selector().select(config(mode), [], 3, request(want="n1"))
    assert rejected.value.code == "no_live_worker"
    assert rejected.value.error == "Service temporarily unavailable" and rejected.value.can_retry is True


# ------------------------------------------------------------------ retries


def test_a_retry_goes_back_to_the_same_node_while_it_is_alive():
    for _ in range(20):
        assert selector().for_retry(NODES, "n2", {"n2"}) == direct("n2")


def test_a_retry_avoids_the_failed_node_when_another_serves():
    chosen = {selector().for_retry(NODES, None, {"n1"}) for _ in range(100)}
    assert chosen == {direct("n2"), direct("n3")}
    assert {selector().for_retry(NODES, "gone", ["n1", "n2"]) for _ in range(20)} == {direct("n3")}


def test_a_retry_takes_any_live_node_when_all_are_to_be_avoided():
    chosen = {selector().for_retry(NODES[:2], None, {"n1", "n2"}) for _ in range(100)}
    assert chosen == {direct("n1"), direct("n2")}


def test_a_retry_finds_no_node_when_nobody_serves():
    assert selector().for_retry([], "n1", set()) is None


# ------------------------------------------------------------------ stable_hash


@pytest.mark.parametrize("a, b", [
    ({"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}),
    ("u1", "u1"),
    ([1, "x", None], [1, "x", None]),
    ({"nested": {"y": 2, "x": 1}}, {"nested": {"x": 1, "y": 2}}),
])
def test_stable_hash_is_equal_for_equal_json_values(a, b):
    assert stable_hash(a) == stable_hash(b)


def test_stable_hash_is_the_crc32_of_the_json_so_every_process_agrees():
    assert stable_hash("u1") == zlib.crc32(b'"u1"')
    assert stable_hash({"b": 1, "a": 2}) == zlib.crc32(b'{"a": 2, "b": 1}')


def test_stable_hash_tells_different_values_apart():
    assert len({stable_hash(v) for v in ["1", 1, [1], {"1": 1}, None, True]}) == 6

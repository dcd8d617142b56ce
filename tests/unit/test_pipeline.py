"""The request pipeline without sockets, Redis or Celery: a stub gateway records what it did."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gateway_app import pipeline
from gateway_app.auth import Identity
from gateway_app.cache import Snapshot
from gateway_app.deliveries import Deliveries, Handle
from gateway_app.hooks import GatewayHooks
from gateway_app.overload import Backoff
from gateway_app.replies import Replies
from gateway_app.selection import NodeSelector
from workers.funconfig import load_funconfig
from workers.protocol import Keys
from workers.registry import NodeInfo
from workers.settings import Settings


class StubConnection:
    def __init__(self, identity=Identity("alice", ("admin",)), public=False):
        self.identity = identity
        self.public = public
        self.binary = False  # JSON text frames
        self.address = "127.0.0.1"
        self.open = True
        self.calls: dict = {}
        self.frames: list[dict] = []

    def send(self, frame: dict, terminal: bool = True) -> bool:
        self.frames.append(frame)
        return True


class RecordingDispatcher:
    def __init__(self, fail: bool = False):
        self.sent: list[tuple] = []
        self.fail = fail

    def send(self, task_name, args, queue, timeout_s, meta, *, sensitive=()):
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((task_name, args, queue, timeout_s, meta))
        return Handle(f"task-{len(self.sent)}", queue)


def config(**fields):
    return load_funconfig({"service": "svc", "request_type": "add", "arg_types": {"a": "num", "b": "num"},
                           "arg_orders": ["a", "b"], **fields})


def node(node_id: str, *configs) -> NodeInfo:
    return NodeInfo(node_id, frozenset(c.service for c in configs), frozenset(c.task_name for c in configs),
                    f"{node_id}.dq2", expires_ms=2**62)


def make_gateway(configs, nodes=None, dispatcher=None, listening=True):
    functions: dict = {}
    for c in configs:
        functions.setdefault((c.service, c.request_type), {})[c.version] = c
    nodes = {"n1": node("n1", *configs)} if nodes is None else nodes
    gateway = SimpleNamespace(
        settings=Settings(), steps=pipeline.build_steps(NodeSelector(None, Keys())), deliveries=Deliveries(),
        cache=SimpleNamespace(snapshot=Snapshot(functions, nodes)),
        dispatcher=dispatcher or RecordingDispatcher(), reply_channel="genapi:reply:test",
        listening=listening, draining=False, detail_error=False, hooks=GatewayHooks(5000), breakers=None,
        tracing=None, backoff=Backoff())
    gateway.replies = Replies(gateway)
    return gateway


def frame(request_type="add", args=None, **extra) -> str:
    return json.dumps({"service": "svc", "request_type": request_type, "request_id": "r",
                       "args": {"a": 1, "b": 2} if args is None else args, **extra})


def test_sync_call_is_dispatched_with_reply_headers_and_waits():
    gateway, conn = make_gateway([config(timeout=2000)]), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames == []
    [(task, args, queue, timeout_s, meta)] = gateway.dispatcher.sent
    assert (task, args, queue) == ("svc.add", {"a": 1, "b": 2}, "genapi.svc")
    assert 1.9 < timeout_s <= 2.0  # what is left of the 2 s timeout when the task is sent
    assert meta["reply"] == "genapi:reply:test" and meta["deadline"] is not None and meta["mode"] == "sync"
    pending = gateway.deliveries.take(meta["ref"])
    assert pending.conn is conn and pending.request_id == "r" and pending.response_type == "sync"
    assert pending.handle == Handle("task-1", "genapi.svc") and pending.args == {"a": 1, "b": 2}


def test_request_info_carries_the_session_identity_not_the_payload():
    gateway, conn = make_gateway([config(request_info=True)]), StubConnection(Identity("alice", ("ops",), "d1"))
    pipeline.run(gateway, conn, frame(user_id="mallory", user_roles=["root"]))
    info = gateway.dispatcher.sent[0][4]["info"]
    assert info == {"request_id": "r", "user_id": "alice", "device_id": "d1", "roles": ["ops"],
                    "service": "svc", "request_type": "add", "version": None}


def test_async_call_is_acknowledged_before_dispatch():
    gateway, conn = make_gateway([config(response_type="async")]), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames == [{"request_id": "r", "result": None, "success": True, "error": None,
                            "async": True, "has_more": False, "can_retry": False}]
    assert len(gateway.deliveries) == 1


def test_none_call_registers_nothing_and_asks_for_no_reply():
    gateway, conn = make_gateway([config(response_type="none")]), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames == [] and len(gateway.deliveries) == 0
    assert gateway.dispatcher.sent[0][4]["reply"] is None


def test_broker_failure_answers_unavailable_and_forgets_the_request():
    gateway, conn = make_gateway([config()], dispatcher=RecordingDispatcher(fail=True)), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert [f["error"] for f in conn.frames] == ["Service temporarily unavailable"]
    assert conn.frames[0]["can_retry"] is True
    assert len(gateway.deliveries) == 0


def test_no_live_node_answers_unavailable_without_dispatching():
    gateway, conn = make_gateway([config()], nodes={}), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames[0]["error"] == "Service temporarily unavailable"
    assert gateway.dispatcher.sent == []


def test_expired_node_counts_as_dead():
    dead = NodeInfo("n1", frozenset({"svc"}), frozenset({"svc.add"}), "n1.dq2", expires_ms=0)
    gateway, conn = make_gateway([config()], nodes={"n1": dead}), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames[0]["error"] == "Service temporarily unavailable"


def test_rolling_deploy_routes_to_a_node_that_has_the_task():
    old, new = config(), config(version="2.0.0")
    nodes = {"old": node("old", old), "new": node("new", old, new)}
    gateway, conn = make_gateway([old, new], nodes=nodes), StubConnection()
    pipeline.run(gateway, conn, frame(version="2.0.0"))
    assert gateway.dispatcher.sent[0][2] == "new.dq2"
    pipeline.run(gateway, conn, frame(version=None))  # latest is 2.0.0 as well
    assert gateway.dispatcher.sent[1][2] == "new.dq2"


@pytest.mark.parametrize("raw, error", [
    (frame(args={"a": 1}), 'Invalid arguments: missing argument "b"'),
    (frame(request_type="nope"), "unsupported function: nope version latest"),
    (frame(version="9.0.0"), "unsupported function: add version 9.0.0"),
    ("{", "Invalid request: Malformed request payload"),
])
def test_errors_before_dispatch_dispatch_nothing(raw, error):
    gateway, conn = make_gateway([config()]), StubConnection()
    pipeline.run(gateway, conn, raw)
    assert len(conn.frames) == 1 and conn.frames[0]["error"].startswith(error)
    assert gateway.dispatcher.sent == []


def test_unauthenticated_connection_is_refused_before_decoding():
    gateway, conn = make_gateway([config()]), StubConnection(identity=None)
    pipeline.run(gateway, conn, frame())
    assert conn.frames[0]["error"] == "Authentication required" and conn.frames[0]["request_id"] == "r"
    assert gateway.dispatcher.sent == []


def test_public_connection_without_identity_may_call_open_functions():
    gateway, conn = make_gateway([config()]), StubConnection(identity=None, public=True)
    pipeline.run(gateway, conn, frame())
    assert len(gateway.dispatcher.sent) == 1


def test_an_unexpected_exception_in_a_step_becomes_one_error_frame():
    gateway, conn = make_gateway([config()]), StubConnection()

    def broken(gateway, call):
        raise RuntimeError("bug")

    gateway.steps.insert(3, broken)
    pipeline.run(gateway, conn, frame())
    assert conn.frames == [{"request_id": "r", "result": None, "success": False,
                            "error": "Internal Server Error", "async": False, "has_more": False,
                            "can_retry": False}]


def test_without_the_reply_subscription_calls_are_refused_not_lost():
    gateway, conn = make_gateway([config()], listening=False), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames[0]["error"] == "Service temporarily unavailable" and conn.frames[0]["can_retry"] is True
    assert gateway.dispatcher.sent == [] and len(gateway.deliveries) == 0


def test_fire_and_forget_needs_no_reply_subscription():
    gateway, conn = make_gateway([config(response_type="none")], listening=False), StubConnection()
    pipeline.run(gateway, conn, frame())
    assert conn.frames == [] and len(gateway.dispatcher.sent) == 1

"""MessagePack binary frames: the ``genapi.msgpack`` subprotocol next to JSON on one gateway."""

from __future__ import annotations

import json
import uuid

import msgpack
import pytest
from websockets.sync.client import connect

from .conftest import call, frames_until_terminal, request

MSGPACK = "genapi.msgpack"


def open_msgpack(gateway, **kwargs):
    return connect(gateway.url(**kwargs), max_size=None, open_timeout=10, subprotocols=[MSGPACK])


def ask(ws, frame: dict, timeout: float = 10) -> dict:
    """Send one MessagePack request; the first frame back, which must be binary."""
    ws.send(msgpack.packb(frame))
    data = ws.recv(timeout=timeout)
    assert isinstance(data, bytes), f"expected a binary frame, got text {data!r}"
    return msgpack.unpackb(data)


def binary_frames_until_terminal(ws, timeout: float = 10) -> list[dict]:
    frames = []
    while True:
        data = ws.recv(timeout=timeout)
        assert isinstance(data, bytes), data
        frame = msgpack.unpackb(data)
        frames.append(frame)
        first_ack = len(frames) == 1 and frame["async"] and (frame["result"] is None or frame["result"] == "init")
        if not frame["has_more"] and not first_ack:
            return frames


# the same requests through both encodings: sync results, every pre-dispatch error, builtins
SAME_ANSWERS = [
    request("add", {"a": 1, "b": 2.5}),
    request("echo", {"text": "héllo ✓"}),
    request("add", {"a": "x", "b": 2}),
    request("add", {"a": 1}),
    request("nope"),
    request("ver", version="9.9.9"),
    request("admins_only"),
    request("boom"),
    request("async_add", {"a": 20, "b": 22}),
    request("ping", service="gateway"),
    {"service": "sample", "request_id": "r1"},
]


@pytest.mark.parametrize("frame", SAME_ANSWERS, ids=lambda f: f.get("request_type", "missing-fields"))
def test_msgpack_and_json_clients_get_the_same_answers(gateway, frame):
    with gateway.connect(roles=()) as text_ws, open_msgpack(gateway, roles=()) as binary_ws:
        assert binary_ws.subprotocol == MSGPACK
        text_ws.send(json.dumps(frame))
        binary_ws.send(msgpack.packb(frame))
        as_json = frames_until_terminal(text_ws)
        as_msgpack = binary_frames_until_terminal(binary_ws)
    assert as_msgpack == as_json
    assert as_json[-1]["request_id"] == frame.get("request_id", "unknown")


def test_json_subprotocol_and_none_keep_text_frames(gateway):
    with connect(gateway.url(), open_timeout=10, subprotocols=["genapi.json"]) as ws:
        assert ws.subprotocol == "genapi.json"
        assert call(ws, request("add", {"a": 1, "b": 2}))["result"] == 3
    with gateway.connect() as ws:
        assert ws.subprotocol is None
        assert call(ws, request("add", {"a": 1, "b": 2}))["result"] == 3


def test_streams_and_async_calls_come_as_binary_frames(modes_stack):
    request_frame = request("count", {"n": 3}, request_id="s1", service="modes")
    with modes_stack.gateway.connect() as text_ws, open_msgpack(modes_stack.gateway) as binary_ws:
        text_ws.send(json.dumps(request_frame))
        binary_ws.send(msgpack.packb(request_frame))
        as_json = frames_until_terminal(text_ws)
        as_msgpack = binary_frames_until_terminal(binary_ws)
    assert as_msgpack == as_json
    assert [frame["result"] for frame in as_msgpack][:4] == ["init", 0, 1, 2]


def test_the_size_limit_applies_to_binary_frames(stack, sample_worker):
    gateway = stack.start_gateway(sample_worker, GENAPI_MAX_PAYLOAD_BYTES="1024")
    with open_msgpack(gateway) as ws:
        big = ask(ws, request("echo", {"text": "x" * 2000}, request_id="big"))
        assert big["success"] is False and big["request_id"] == "unknown"
        assert big["error"].startswith("Invalid request: Request payload exceeds maximum size of 1024 bytes")
        # the connection stays usable
        assert ask(ws, request("add", {"a": 2, "b": 3}))["result"] == 5


@pytest.mark.parametrize(("payload", "expected"), [
    (b"\xc1", "Invalid request: Malformed request payload: not valid MessagePack"),
    (msgpack.packb([1, 2]), "Invalid request: Malformed request payload: expected a map, got an array"),
    (msgpack.packb({"service": "sample", "request_type": "echo", "request_id": "b1", "args": {"text": b"raw"}}),
     "Invalid request: Malformed request payload: binary and extension values are not supported"),
    (msgpack.packb({"service": "sample", "request_type": "add", "request_id": "b1",
                    "args": {"a": float("nan"), "b": 1}}),
     "Invalid request: Malformed request payload: binary and extension values are not supported"),
    (msgpack.packb({1: "x"}), "Invalid request: Malformed request payload: not valid MessagePack"),
], ids=["not-msgpack", "array", "bin-value", "nan", "int-key"])
def test_bad_binary_frames_get_a_clear_error_and_the_connection_stays_up(gateway, payload, expected):
    with open_msgpack(gateway) as ws:
        ws.send(payload)
        frame = msgpack.unpackb(ws.recv(timeout=10))
        assert frame["success"] is False and frame["error"].startswith(expected), frame
        assert ask(ws, request("add", {"a": 1, "b": 1}))["result"] == 2


def test_relay_frames_reach_a_msgpack_member(gateway):
    group = f"g-{uuid.uuid4().hex[:8]}"
    with gateway.connect(user="alice") as alice, open_msgpack(gateway, user="bob") as bob:
        created = call(alice, request("create_group", {"group_id": group, "group_type": "public"}, service="relay"))
        assert created["success"], created
        joined = ask(bob, request("join_group", {"group_id": group}, request_id="j1", service="relay"))
        assert joined["success"], joined
        sent = call(alice, request("send", {"group_id": group, "message": {"text": "hi ✓"}}, request_id="m1",
                                   service="relay"))
        assert sent["success"], sent
        data = bob.recv(timeout=10)
        assert isinstance(data, bytes)
        relayed = msgpack.unpackb(data)
        assert relayed["request_id"] == "m1" and relayed["success"] is True
        assert {key: relayed["result"][key] for key in ("group_id", "from_user_id", "message")} == \
            {"group_id": group, "from_user_id": "alice", "message": {"text": "hi ✓"}}

"""The client's pure parts: reading a call's frames without knowing its mode, sorting error
strings into classes, recognising relay frames, encoding, and ``genapi call``'s arguments."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import msgpack
import pytest

from gateway_app.call_cli import UsageError, call_args, parse_value
from gateway_app.client import errors, wire
from gateway_app.client.calls import Call


def frame(result=None, success=True, error=None, is_async=False, has_more=False, can_retry=False, request_id="r"):
    return {"request_id": request_id, "result": result, "success": success, "error": error, "async": is_async,
            "has_more": has_more, "can_retry": can_retry}


def events(frames: list[dict]) -> tuple[list, list[bool], str | None]:
    """(events as (kind, value), terminal flag per frame, mode) after feeding ``frames``."""
    call = Call("r", {})
    terminal = [call.feed(f) for f in frames]
    seen = []
    while not call.events.empty():
        event = call.events.get_nowait()
        seen.append((event.kind, event.value if event.kind != "error" else event.value.error))
    return seen, terminal, call.mode


def test_sync_answer():
    assert events([frame(5)]) == ([("result", 5)], [True], "sync")


def test_async_ack_then_result():
    assert events([frame(None, is_async=True), frame(7)]) == ([("result", 7)], [False, True], "async")


def test_async_ack_then_error():
    seen, terminal, _ = events([frame(None, is_async=True), frame(success=False, error="Request cancelled")])
    assert seen == [("error", "Request cancelled")] and terminal == [False, True]


def test_stream_with_end_frame():
    frames = [frame("init", is_async=True, has_more=True), frame(0, is_async=True, has_more=True),
              frame(None, is_async=True, has_more=True), frame(None, is_async=True)]
    seen, terminal, mode = events(frames)
    assert seen == [("chunk", 0), ("chunk", None), ("end", None)]  # a None chunk is a chunk
    assert terminal == [False, False, False, True] and mode == "stream"


def test_stream_with_last_chunk_and_error():
    frames = [frame("init", is_async=True, has_more=True), frame("last", is_async=True)]
    assert events(frames)[0] == [("chunk", "last"), ("end", None)]
    frames = [frame("init", is_async=True, has_more=True), frame(1, is_async=True, has_more=True),
              frame(success=False, error="Internal Server Error")]
    assert events(frames)[0] == [("chunk", 1), ("error", "Internal Server Error")]


def test_an_error_first_ends_any_call():
    assert events([frame(success=False, error="Permission denied")]) == (
        [("error", "Permission denied")], [True], None)


def test_an_abandoned_call_queues_nothing_but_still_finishes():
    call = Call("r", {})
    call.abandoned = True
    call.feed(frame("init", is_async=True, has_more=True))
    assert call.opened
    call.feed(frame(1, is_async=True, has_more=True))
    assert call.feed(frame(None, is_async=True)) is True
    assert call.events.empty() and call.finished.is_set() and not call.opened


@pytest.mark.parametrize(("text", "cls"), [
    ("Authentication required", errors.AuthenticationRequired),
    ("Invalid request: Missing required fields: request_id", errors.BadRequest),
    ("unsupported function: x version latest", errors.UnsupportedFunction),
    ("disabled function: x version 1.0.0", errors.UnsupportedFunction),
    ("Permission denied", errors.PermissionDenied),
    ("Rate limit exceeded. Please retry after 3 seconds.", errors.RateLimited),
    ("Rate limit service unavailable", errors.RateLimited),
    ('Invalid arguments: missing argument "key"', errors.InvalidArguments),
    ('hook rejected: "Quota exceeded"', errors.HookRejected),
    ("Service temporarily unavailable", errors.Unavailable),
    ("Request timed out", errors.TimedOut),
    ("Internal Server Error: boom", errors.InternalServerError),
    ("Request cancelled", errors.Cancelled),
    ("Client too slow: its outbound queue is full", errors.ClientTooSlow),
    ("Group not found", errors.RelayError),
    ("Too many groups on this connection (at most 100)", errors.RelayError),
    ("something new", errors.GenApiCallError),
])
def test_error_classes(text, cls):
    error = errors.from_frame(frame(success=False, error=text, can_retry=True, request_id="q"))
    assert type(error) is cls and error.error == text and error.can_retry is True and error.request_id == "q"


def test_relay_frames_are_recognised_by_their_result():
    message = {"group_id": "g", "from_user_id": "bob", "message": [1], "timestamp": "2026-01-01T00:00:00.000000Z"}
    got = wire.relay_message(frame(message, request_id="b2"))
    assert (got.group_id, got.from_user_id, got.message, got.request_id) == ("g", "bob", [1], "b2")
    assert wire.relay_message(frame({**message, "extra": 1})) is None
    assert wire.relay_message(frame(message, is_async=True)) is None
    assert wire.relay_message(frame("x")) is None


def test_plain_values_and_encodings():
    u = uuid.uuid4()
    value = {"when": datetime(2024, 5, 1, 12, tzinfo=UTC), "day": date(2024, 5, 1), "id": u, "pair": (1, 2)}
    assert wire.plain(value) == {"when": "2024-05-01T12:00:00+00:00", "day": "2024-05-01", "id": str(u),
                                 "pair": [1, 2]}
    with pytest.raises(TypeError):
        wire.plain({"x": object()})
    with pytest.raises(TypeError):
        wire.plain({1: "x"})
    request = wire.request("s", "f", "id1", {"a": "é"}, None)
    assert wire.decode(wire.encode(request, "json")) == request
    assert msgpack.unpackb(wire.encode(request, "msgpack")) == request
    assert wire.decode(wire.encode(request, "msgpack")) == request
    with pytest.raises(ValueError):
        wire.encode(wire.request("s", "f", "id1", {"a": float("nan")}, None), "json")
    assert wire.ws_url("ws://h/ws", "a+b") == "ws://h/ws?token=a%2Bb"
    assert wire.ws_url("ws://h/ws?x=1", "t") == "ws://h/ws?x=1&token=t"


def test_call_cli_arguments():
    assert [parse_value(v) for v in ("1", "true", '"x"', "[1]", "Ada", "", "NaN", "1e3")] == \
        [1, True, "x", [1], "Ada", "", "NaN", 1000.0]
    assert call_args('{"a": 1, "b": 2}', ["b=3", "c=x=y"]) == {"a": 1, "b": 3, "c": "x=y"}
    for bad in (("[1]", []), ("{", []), (None, ["novalue"]), (None, ["=1"])):
        with pytest.raises(UsageError):
            call_args(*bad)


def test_a_call_needs_no_running_loop_to_be_built():
    asyncio.run(asyncio.sleep(0))  # the queue and event bind to the loop that first uses them
    call = Call("r", {})
    assert call.feed(frame(1)) and asyncio.run(call.events.get()).value == 1

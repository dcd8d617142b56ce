"""gateway_app.replies: terminal frames, settling each call exactly once, after-call hooks,
stream chunks and disconnects, on a stub gateway (no Redis, no sockets, no Celery)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
from dataclasses import replace
from types import SimpleNamespace

import pytest

from gateway_app.cache import Snapshot
from gateway_app.deliveries import Deliveries, Handle, Pending, call_key
from gateway_app.hooks import GatewayHooks
from gateway_app.replies import Outcome, Replies, terminal_frame
from gateway_app.retry import Retry
from workers.funconfig import load_funconfig
from workers.protocol import reply_chunks, reply_end, reply_error, reply_last, reply_result, reply_started

WAIT = 10  # seconds: generous upper bound for thread hand-offs, never a synchronisation sleep
MODES = ("sync", "async", "stream")


class StubConnection:
    """Records frames; ``room`` is how many non-terminal frames it still takes (None: any)."""

    def __init__(self, room: int | None = None) -> None:
        self.open = True
        self.identity = None
        self.calls: dict = {}
        self.frames: list[dict] = []
        self.room = room

    def send(self, frame: dict, *, terminal: bool = True) -> bool:
        if not terminal and self.room is not None:
            if self.room == 0:
                return False
            self.room -= 1
        self.frames.append(frame)
        return True


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, task_name, args, queue, timeout_s, meta, *, sensitive=()):
        self.sent.append((task_name, args, queue, timeout_s, meta))
        return Handle(f"task-{len(self.sent)}", queue)


def make_gateway(detail_error: bool = False) -> SimpleNamespace:
    gateway = SimpleNamespace(deliveries=Deliveries(), detail_error=detail_error,
                              cache=SimpleNamespace(snapshot=Snapshot({}, {})), dispatcher=RecordingDispatcher(),
                              reply_channel="genapi:reply:test", cancelled=[], hooks=GatewayHooks(5000),
                              breakers=None)
    gateway.cancel_remote = gateway.cancelled.append
    gateway.replies = Replies(gateway)
    return gateway


def config(mode: str):
    return load_funconfig({"service": "svc", "request_type": "add", "arg_types": {"a": "num"},
                           "arg_orders": ["a"], "response_type": mode, "timeout": 60000})


def start(gateway, conn, mode: str = "sync", request_id="r") -> Pending:
    """A call registered and dispatched as the pipeline does it."""
    pending = Pending(conn, request_id, mode, None, task="svc.add", config=config(mode), args={"a": 1},
                      queue="genapi.svc")
    gateway.replies.start(pending)
    return pending


def deliver(gateway, message: dict) -> None:
    gateway.replies.on_message(json.dumps(message).encode())


def frame(result=None, success=False, error=None, is_async=False, has_more=False, can_retry=False,
          request_id="r") -> dict:
    return {"request_id": request_id, "result": result, "success": success, "error": error, "async": is_async,
            "has_more": has_more, "can_retry": can_retry}


def chunk(value, request_id="r") -> dict:
    return frame(result=value, success=True, is_async=True, has_more=True, request_id=request_id)


UNAVAILABLE = frame(error="Service temporarily unavailable", can_retry=True)
EXPECTED = {
    "result": frame(result={"x": 1}, success=True),
    "last": frame(result={"x": 1}, success=True, is_async=True),
    "end": frame(success=True, is_async=True),
    "error": frame(error="Internal Server Error"),
    "timeout": frame(error="Request timed out", can_retry=True),
    "cancelled": frame(error="Request cancelled"),
    "slow_client": frame(error="Client too slow: its outbound queue is full"),
    "disconnected": None,
    "lost": UNAVAILABLE,
    "draining": UNAVAILABLE,
    "dispatch_failed": UNAVAILABLE,
    "no_live_worker": UNAVAILABLE,
}


# ------------------------------------------------------------------ terminal frames


@pytest.mark.parametrize("mode, kind", itertools.product(MODES, EXPECTED))
def test_terminal_frame_of_every_outcome_in_every_mode(mode, kind):
    pending = Pending(StubConnection(), "r", mode, None)
    expected = EXPECTED[kind]
    if kind == "cancelled" and mode == "stream":
        expected = frame(success=True, is_async=True)  # a cancelled stream simply ends
    assert terminal_frame(pending, Outcome(kind, data={"x": 1}, error="boom", node="n1"), False) == expected


@pytest.mark.parametrize("mode", MODES)
def test_error_detail_is_shown_only_when_enabled(mode):
    pending = Pending(StubConnection(), "r", mode, None)
    assert terminal_frame(pending, Outcome("error", error="boom"), True) == frame(error="Internal Server Error: boom")
    assert terminal_frame(pending, Outcome("error", error="boom"), False) == frame(error="Internal Server Error")
    assert terminal_frame(pending, Outcome("error"), True) == frame(error="Internal Server Error")


def test_terminal_frames_echo_any_json_request_id():
    pending = Pending(StubConnection(), {"id": [1, 2]}, "sync", None)
    assert terminal_frame(pending, Outcome("result", data=3), False)["request_id"] == {"id": [1, 2]}


# ------------------------------------------------------------------ settling


@pytest.mark.parametrize("mode", MODES)
def test_a_worker_reply_ends_the_call_with_one_frame(mode):
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn, mode)
    message = reply_result(pending.ref, 5, "n1") if mode != "stream" else reply_last(pending.ref, 5, "n1")
    deliver(gateway, message)
    deliver(gateway, message)  # a duplicate finds nothing
    assert conn.frames == [frame(result=5, success=True, is_async=mode == "stream")]
    assert len(gateway.deliveries) == 0 and conn.calls == {}
    assert gateway.cancelled == []


def test_async_and_stream_calls_are_listed_on_their_connection_until_they_end():
    gateway, conn = make_gateway(), StubConnection()
    calls = [start(gateway, conn, mode, request_id=mode) for mode in MODES]
    assert set(conn.calls) == {call_key("async"), call_key("stream")}
    for pending in calls:
        assert gateway.replies.settle(pending, Outcome("timeout")) is True
    assert conn.calls == {}


def test_a_call_settled_twice_sends_one_frame():
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn)
    assert gateway.replies.settle(pending, Outcome("timeout")) is True
    assert gateway.replies.settle(pending, Outcome("result", data=1)) is False
    assert conn.frames == [frame(error="Request timed out", can_retry=True)]


def test_a_reply_racing_a_timeout_ends_the_call_exactly_once():
    for _ in range(300):
        gateway, conn = make_gateway(), StubConnection()
        pending = start(gateway, conn, "async")
        conn.frames.clear()
        both = threading.Barrier(2)
        won: list[bool] = []

        def reply(pending=pending, both=both, won=won, gateway=gateway):
            both.wait()
            won.append(gateway.replies.settle(pending, Outcome("result", data=1)))

        def time_out(pending=pending, both=both, won=won, gateway=gateway):
            both.wait()
            won.append(gateway.replies.settle(pending, Outcome("timeout")))

        threads = [threading.Thread(target=reply), threading.Thread(target=time_out)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(won) == [False, True]
        assert conn.frames in ([frame(result=1, success=True)], [frame(error="Request timed out", can_retry=True)])
        assert len(gateway.deliveries) == 0 and conn.calls == {}


@pytest.mark.parametrize("mode", ["async", "stream"])
@pytest.mark.parametrize("kind, tells_worker", [("cancelled", True), ("disconnected", True), ("slow_client", True),
                                                ("timeout", False), ("result", False), ("lost", False)])
def test_the_worker_is_told_to_stop_only_when_nobody_waits_for_the_call(mode, kind, tells_worker):
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn, mode)
    gateway.replies.settle(pending, Outcome(kind))
    assert gateway.cancelled == ([pending] if tells_worker else [])


def test_the_worker_of_a_sync_call_is_never_told_to_stop():
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn, "sync")
    gateway.replies.settle(pending, Outcome("disconnected"))
    assert gateway.cancelled == []


def test_a_failed_dispatch_answers_unavailable_and_forgets_the_call():
    gateway, conn = make_gateway(), StubConnection()

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    gateway.dispatcher.send = broken
    pending = start(gateway, conn, "async")
    assert conn.frames == [UNAVAILABLE]
    assert len(gateway.deliveries) == 0 and conn.calls == {}
    assert gateway.cancelled == [] and pending.handle is None


# ------------------------------------------------------------------ after-call hooks


class Hook:
    def __init__(self, take: bool = False, fail: bool = False) -> None:
        self.take = take
        self.fail = fail
        self.seen: list[tuple] = []

    def after_call(self, gateway, pending, outcome) -> bool:
        self.seen.append((pending, outcome, pending.node))
        if self.fail:
            raise RuntimeError("hook bug")
        return self.take


def test_every_hook_sees_the_outcome_with_the_node_that_produced_it():
    gateway, conn = make_gateway(), StubConnection()
    first, second = Hook(), Hook()
    gateway.replies.after_call += [first, second]
    pending = start(gateway, conn)
    deliver(gateway, reply_error(pending.ref, "boom", "n2"))
    [(seen_pending, outcome, node)] = first.seen
    assert seen_pending is pending and outcome == Outcome("error", error="boom", node="n2") and node == "n2"
    assert len(second.seen) == 1
    assert conn.frames == [frame(error="Internal Server Error")]


def test_a_hook_that_takes_the_call_over_suppresses_the_terminal_frame():
    gateway, conn = make_gateway(), StubConnection()
    taker, after = Hook(take=True), Hook()
    gateway.replies.after_call += [taker, after]
    pending = start(gateway, conn, "async")
    conn.frames.clear()
    assert gateway.replies.settle(pending, Outcome("error", error="boom")) is True
    assert conn.frames == []
    assert after.seen == []  # the first hook that takes the call wins
    assert conn.calls == {call_key("r"): pending}  # still running as far as its client knows
    assert gateway.cancelled == []


def test_a_hook_that_raises_is_logged_and_ignored(caplog):
    gateway, conn = make_gateway(), StubConnection()
    broken, after = Hook(fail=True), Hook()
    gateway.replies.after_call += [broken, after]
    pending = start(gateway, conn)
    with caplog.at_level(logging.ERROR, logger="genapi.gateway"):
        assert gateway.replies.settle(pending, Outcome("result", data=1)) is True
    assert conn.frames == [frame(result=1, success=True)]
    assert len(after.seen) == 1
    assert any("after-call hook" in record.getMessage() and record.exc_info for record in caplog.records)


# ------------------------------------------------------------------ streams


def test_chunks_become_frames_in_order_then_the_end():
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn, "stream")
    deliver(gateway, reply_chunks(pending.ref, [0, 1], "n1"))
    deliver(gateway, reply_chunks(pending.ref, [{"k": 2}], "n1"))
    deliver(gateway, reply_end(pending.ref, "n1"))
    assert conn.frames == [chunk(0), chunk(1), chunk({"k": 2}), frame(success=True, is_async=True)]


def test_chunks_handled_after_the_call_ended_send_nothing():
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn, "stream")
    message = reply_chunks(pending.ref, [0, 1], "n1")
    gateway.replies.settle(pending, Outcome("timeout"))
    # as when the chunks were taken off the channel just before the timeout settled the call
    gateway.replies.handlers["chunks"](pending, message)
    deliver(gateway, message)
    assert conn.frames == [frame(error="Request timed out", can_retry=True)]


class BlockingConnection(StubConnection):
    """Holds its first chunk until released, so a terminal frame can race the chunks."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.go = threading.Event()

    def send(self, frame: dict, *, terminal: bool = True) -> bool:
        if not terminal and not self.holding.is_set():
            self.holding.set()
            self.go.wait(WAIT)
        return super().send(frame, terminal=terminal)


def test_no_chunk_follows_the_terminal_frame_when_the_end_races_the_chunks():
    gateway, conn = make_gateway(), BlockingConnection()
    pending = start(gateway, conn, "stream")
    chunks = threading.Thread(target=deliver, args=(gateway, reply_chunks(pending.ref, [0, 1, 2], "n1")))
    chunks.start()
    assert conn.holding.wait(WAIT)  # the chunks are being sent
    end = threading.Thread(target=gateway.replies.settle, args=(pending, Outcome("timeout")))
    end.start()
    end.join(0.2)  # a bounded check for absence: the end waits behind the chunks being sent
    assert end.is_alive() and conn.frames == []
    conn.go.set()
    chunks.join(WAIT)
    end.join(WAIT)
    assert conn.frames == [chunk(0), chunk(1), chunk(2), frame(error="Request timed out", can_retry=True)]


def test_a_chunk_the_connection_cannot_take_ends_the_stream_as_too_slow():
    gateway, conn = make_gateway(), StubConnection(room=2)
    pending = start(gateway, conn, "stream")
    deliver(gateway, reply_chunks(pending.ref, [0, 1, 2, 3], "n1"))
    deliver(gateway, reply_chunks(pending.ref, [4], "n1"))
    deliver(gateway, reply_end(pending.ref, "n1"))
    assert conn.frames == [chunk(0), chunk(1), frame(error="Client too slow: its outbound queue is full")]
    assert len(gateway.deliveries) == 0 and conn.calls == {}
    assert gateway.cancelled == [pending] and pending.node == "n1"


# ------------------------------------------------------------------ disconnects and messages


def test_a_disconnect_ends_every_call_of_that_connection_without_a_frame():
    gateway, conn, other = make_gateway(), StubConnection(), StubConnection()
    mine = [start(gateway, conn, mode, request_id=mode) for mode in MODES]
    theirs = start(gateway, other, "async")
    gateway.replies.disconnected(conn)
    assert conn.frames == [] and conn.calls == {}
    assert gateway.deliveries.entries() == [theirs]
    assert gateway.cancelled == mine[1:]  # async and stream; a sync call's worker answers into the void
    for pending in mine:  # their late replies find nothing
        deliver(gateway, reply_result(pending.ref, 1, "n1"))
    assert conn.frames == []


def test_started_records_the_node_running_the_call():
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn)
    deliver(gateway, reply_started(pending.ref, "n7"))
    assert pending.node == "n7" and gateway.deliveries.get(pending.ref) is pending
    assert conn.frames == []


def test_replies_for_unknown_refs_are_ignored():
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn)
    deliver(gateway, reply_result("no-such-ref", 1, "n1"))
    deliver(gateway, {"type": "result", "data": 1})
    assert conn.frames == [] and gateway.deliveries.get(pending.ref) is pending


def test_replies_of_an_unknown_type_are_ignored(caplog):
    gateway, conn = make_gateway(), StubConnection()
    pending = start(gateway, conn)
    with caplog.at_level(logging.WARNING, logger="genapi.gateway"):
        deliver(gateway, {"ref": pending.ref, "type": "progress", "node": "n1", "data": 50})
        deliver(gateway, {"ref": pending.ref, "node": "n1"})
    assert conn.frames == [] and gateway.deliveries.get(pending.ref) is pending
    assert any("unknown reply type" in record.getMessage() for record in caplog.records)


# ------------------------------------------------------------------ retries


class ManualTimers:
    """Stands in for ``threading.Timer``: timers wait until the test fires them."""

    def __init__(self) -> None:
        self.waiting: list[tuple] = []

    def __call__(self, interval, function, args=(), kwargs=None):
        timers = self

        class Timer:
            daemon = False

            def start(self) -> None:
                timers.waiting.append((interval, function, args, kwargs or {}))

        return Timer()

    def fire(self) -> None:
        [(_, function, args, kwargs)] = self.waiting
        self.waiting.clear()
        function(*args, **kwargs)


class StubSelector:
    """``for_retry`` records its arguments and answers ``choice``; ``meanwhile`` runs first."""

    def __init__(self, choice, meanwhile=None) -> None:
        self.choice = choice
        self.meanwhile = meanwhile
        self.asked: list[tuple] = []

    def for_retry(self, serving, same, avoid):
        self.asked.append((serving, same, set(avoid)))
        if self.meanwhile is not None:
            self.meanwhile()
        return self.choice


@pytest.fixture
def timers(monkeypatch):
    timers = ManualTimers()
    monkeypatch.setattr(threading, "Timer", timers)
    return timers


def start_retried(gateway, conn, mode: str) -> Pending:
    """A call with ``retry: 1`` whose first attempt failed on n1; its retry waits for its timer."""
    gateway.replies.after_call.append(Retry())
    pending = Pending(conn, "r", mode, None, task="svc.add", config=replace(config(mode), retry=1), args={"a": 1},
                      queue="genapi.svc")
    gateway.replies.start(pending)
    conn.frames.clear()
    deliver(gateway, reply_error(pending.ref, "boom", "n1"))
    assert conn.frames == []
    return pending


def test_a_retried_call_is_dispatched_again_under_a_new_ref_to_the_chosen_worker(timers):
    gateway, conn = make_gateway(), StubConnection()
    gateway.selector = StubSelector(SimpleNamespace(queue="n2.dq2", node="n2"))
    pending = start_retried(gateway, conn, "async")
    first_ref = gateway.dispatcher.sent[0][4]["ref"]
    timers.fire()
    assert gateway.selector.asked == [([], None, {"n1"})]
    assert pending.ref != first_ref and pending.node == "n2"
    assert gateway.dispatcher.sent[-1][2] == "n2.dq2" and gateway.dispatcher.sent[-1][4]["ref"] == pending.ref
    deliver(gateway, reply_result(first_ref, "late", "n1"))  # the failed attempt's late reply
    deliver(gateway, reply_result(pending.ref, "ok", "n2"))
    assert conn.frames == [frame(result="ok", success=True)]
    assert len(gateway.deliveries) == 0 and conn.calls == {}


def test_a_retry_that_finds_no_live_worker_answers_unavailable(timers):
    gateway, conn = make_gateway(), StubConnection()
    gateway.selector = StubSelector(None)
    start_retried(gateway, conn, "async")
    timers.fire()
    assert conn.frames == [UNAVAILABLE]
    assert len(gateway.dispatcher.sent) == 1 and len(gateway.deliveries) == 0 and conn.calls == {}


def test_a_call_cancelled_before_its_retry_timer_fires_is_not_dispatched_again(timers):
    gateway, conn = make_gateway(), StubConnection()
    gateway.selector = StubSelector(SimpleNamespace(queue="n2.dq2", node="n2"))
    pending = start_retried(gateway, conn, "stream")
    assert gateway.replies.settle(pending, Outcome("cancelled")) is True
    timers.fire()
    assert len(gateway.dispatcher.sent) == 1 and gateway.selector.asked == []
    assert conn.frames == [frame(success=True, is_async=True)]


def test_a_call_cancelled_while_its_retry_is_dispatched_does_not_keep_a_worker_busy(timers):
    # The cancel lands between the retry's "is the call still pending?" check and its dispatch.
    gateway, conn = make_gateway(), StubConnection()
    pending = start_retried(gateway, conn, "stream")
    gateway.selector = StubSelector(SimpleNamespace(queue="n2.dq2", node="n2"),
                                    meanwhile=lambda: gateway.replies.settle(pending, Outcome("cancelled")))
    timers.fire()
    assert len(gateway.deliveries) == 0 and conn.calls == {}
    redispatched = len(gateway.dispatcher.sent) == 2
    # either the retry is not sent, or its worker is told to stop like any cancelled stream's
    assert not redispatched or gateway.cancelled == [pending], (gateway.dispatcher.sent, gateway.cancelled)

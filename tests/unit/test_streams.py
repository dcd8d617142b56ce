"""workers.streams: a stream's chunks and its single end, published by the handle's sender thread,
and ``pump`` driving a generator into a handle. The publish function is a recorder."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from workers.streams import BATCH_LIMIT, StreamHandle, pump

WAIT = 10  # seconds: generous upper bound for thread hand-offs, never a synchronisation sleep
REF, NODE = "ref-1", "n1"


class Publisher:
    """Records every published message (decoded). ``stall()`` blocks the next publish until
    ``release()``; ``blocked`` is set once one is waiting."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.blocked = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def stall(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def __call__(self, payload: str) -> None:
        assert isinstance(payload, str)
        if not self._gate.is_set():
            self.blocked.set()
            self._gate.wait()
        self.messages.append(json.loads(payload))

    def chunks(self) -> list:
        return [c for m in self.messages if m["type"] == "chunks" for c in m["data"]]

    def terminal(self) -> list[dict]:
        return [m for m in self.messages if m["type"] != "chunks"]


@pytest.fixture
def publisher():
    publisher = Publisher()
    yield publisher
    publisher.release()


@pytest.fixture
def open_handle(publisher):
    """Opens handles on the recording publisher; each one's sender thread must be gone at the end."""
    handles: list[StreamHandle] = []

    def make(deadline: float | None = None, cancel: threading.Event | None = None) -> StreamHandle:
        handle = StreamHandle(publisher, REF, NODE, deadline, cancel)
        handles.append(handle)
        return handle

    yield make
    publisher.release()
    for handle in handles:
        if not handle.finished.is_set():
            handle.complete()
        assert handle.wait(WAIT)


def chunks_message(data: list) -> dict:
    return {"ref": REF, "type": "chunks", "node": NODE, "data": data}


END = {"ref": REF, "type": "end", "node": NODE}


# ------------------------------------------------------------------ StreamHandle


def test_chunks_are_published_in_order_then_one_end(publisher, open_handle):
    handle = open_handle()
    for i in range(1000):
        assert handle.send_result(i) is True
    assert handle.complete() is True
    assert handle.wait(WAIT)
    assert publisher.chunks() == list(range(1000))
    assert publisher.messages[-1] == END and publisher.terminal() == [END]
    assert all(len(m["data"]) <= BATCH_LIMIT for m in publisher.messages[:-1])


def test_chunks_queued_while_the_sender_is_busy_go_out_as_one_message(publisher, open_handle):
    handle = open_handle()
    publisher.stall()
    handle.send_result("first")
    assert publisher.blocked.wait(WAIT)  # the sender is publishing "first"
    for i in range(10):
        handle.send_result(i)
    handle.complete()
    publisher.release()
    assert handle.wait(WAIT)
    assert publisher.messages == [chunks_message(["first"]), chunks_message(list(range(10))), END]


def test_a_batch_is_at_most_batch_limit_chunks(publisher, open_handle):
    handle = open_handle()
    publisher.stall()
    handle.send_result("first")
    assert publisher.blocked.wait(WAIT)
    for i in range(BATCH_LIMIT + 5):
        handle.send_result(i)
    handle.complete()
    publisher.release()
    assert handle.wait(WAIT)
    assert [len(m.get("data") or ()) for m in publisher.messages] == [1, BATCH_LIMIT, 5, 0]
    assert publisher.chunks() == ["first", *range(BATCH_LIMIT + 5)]


def test_a_stream_has_one_end_and_nothing_after_it(publisher, open_handle):
    handle = open_handle()
    assert handle.send_result(1) is True
    assert handle.complete() is True
    assert handle.ended
    assert handle.complete() is False
    assert handle.error("late") is False
    assert handle.send_last_result("late") is False
    assert handle.send_result(2) is False
    assert handle.wait(WAIT)
    assert publisher.messages == [chunks_message([1]), END]


def test_the_last_result_message(publisher, open_handle):
    handle = open_handle()
    assert handle.send_last_result({"done": True}) is True
    assert handle.wait(WAIT)
    assert publisher.messages == [{"ref": REF, "type": "last", "node": NODE, "data": {"done": True}}]


def test_the_error_message_carries_the_reason_as_text(publisher, open_handle):
    handle = open_handle()
    assert handle.error(ValueError("feed broke")) is True
    assert handle.wait(WAIT)
    assert publisher.messages == [{"ref": REF, "type": "error", "node": NODE, "error": "feed broke"}]


@pytest.mark.parametrize("bad", [object(), float("nan"), {1, 2}], ids=["object", "nan", "set"])
def test_a_chunk_that_is_not_json_ends_the_stream_with_an_error(publisher, open_handle, bad):
    handle = open_handle()
    assert handle.send_result(bad) is True  # queued; the sender finds out
    assert handle.wait(WAIT)
    [message] = publisher.messages
    assert message["type"] == "error" and message["ref"] == REF and message["node"] == NODE
    assert message["error"].startswith("stream chunk is not JSON serialisable")
    assert handle.ended and handle.send_result(1) is False and handle.complete() is False


def test_a_last_result_that_is_not_json_becomes_the_error(publisher, open_handle):
    handle = open_handle()
    handle.send_last_result(object())
    assert handle.wait(WAIT)
    assert [m["type"] for m in publisher.messages] == ["error"]


def test_cancelled_after_the_cancel_event_or_past_the_deadline(open_handle):
    cancel = threading.Event()
    running = open_handle(deadline=time.time() + 3600, cancel=cancel)
    assert running.cancelled is False
    cancel.set()
    assert running.cancelled is True
    assert open_handle(deadline=time.time() - 1).cancelled is True
    assert open_handle(deadline=None).cancelled is False


def test_a_cancelled_handle_refuses_chunks(publisher, open_handle):
    cancel = threading.Event()
    handle = open_handle(cancel=cancel)
    cancel.set()
    assert handle.send_result(1) is False
    assert handle.wait(WAIT)
    assert publisher.messages == []


def test_the_sender_exits_after_a_cancel_without_an_end(publisher, open_handle):
    cancel = threading.Event()
    handle = open_handle(cancel=cancel)
    handle.send_result(0)
    cancel.set()
    assert handle.wait(WAIT)  # nobody called complete(): the sender still ends
    handle._sender.join(WAIT)
    assert not handle._sender.is_alive()
    assert publisher.terminal() == []


def test_after_a_cancel_queued_chunks_are_dropped_but_an_end_still_goes_out(publisher, open_handle):
    cancel = threading.Event()
    handle = open_handle(cancel=cancel)
    publisher.stall()
    handle.send_result(0)
    assert publisher.blocked.wait(WAIT)
    handle.send_result(1)
    handle.send_result(2)
    cancel.set()
    assert handle.complete() is True
    publisher.release()
    assert handle.wait(WAIT)
    assert publisher.messages == [chunks_message([0]), END]


# ------------------------------------------------------------------ pump


def describe(exc: BaseException) -> str:
    return f"described: {exc}"


def test_pump_publishes_each_yield_then_an_end(publisher, open_handle):
    handle = open_handle()
    pump((i for i in range(5)), handle, describe)
    assert handle.wait(WAIT)
    assert publisher.chunks() == [0, 1, 2, 3, 4] and publisher.terminal() == [END]


def test_pump_sends_a_returned_value_as_the_last_chunk(publisher, open_handle):
    def produce():
        yield "a"
        yield "b"
        return {"total": 2}

    handle = open_handle()
    pump(produce(), handle, describe)
    assert handle.wait(WAIT)
    assert publisher.chunks() == ["a", "b"]
    assert publisher.terminal() == [{"ref": REF, "type": "last", "node": NODE, "data": {"total": 2}}]


def test_pump_ends_the_stream_with_the_error_a_generator_raised(publisher, open_handle):
    def produce():
        yield 1
        raise KeyError("missing")

    handle = open_handle()
    pump(produce(), handle, describe)
    assert handle.wait(WAIT)
    assert publisher.chunks() == [1]
    assert publisher.terminal() == [{"ref": REF, "type": "error", "node": NODE, "error": "described: 'missing'",
                                     "unexpected": True}]  # an exception, not a deliberate error: breakers count it


def test_a_cancel_closes_the_generator_and_sends_no_end(publisher, open_handle):
    cancel, closed = threading.Event(), threading.Event()

    def produce():
        try:
            for i in itertools.count():
                if i == 3:
                    cancel.set()  # the client's cancel arrives while the producer runs
                yield i
        finally:
            closed.set()

    handle = open_handle(cancel=cancel)
    generator = produce()  # held, so only pump can have closed it
    pump(generator, handle, describe)
    assert closed.is_set() and generator.gi_frame is None
    assert handle.wait(WAIT)
    assert publisher.terminal() == []
    assert publisher.chunks() == [0, 1, 2][: len(publisher.chunks())]


def test_a_generator_past_its_deadline_is_closed(publisher, open_handle):
    closed = threading.Event()
    handle = open_handle(deadline=time.time() + 3600)

    def produce():
        try:
            yield 0
            handle.deadline = time.time() - 1  # time runs out while the producer works
            yield 1
            yield 2
        finally:
            closed.set()

    generator = produce()
    pump(generator, handle, describe)
    assert closed.is_set() and generator.gi_frame is None
    assert handle.wait(WAIT)
    assert publisher.terminal() == [] and publisher.chunks() in ([], [0])

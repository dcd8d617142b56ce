"""workers.logs.Deferred: the gateway's access lines leave the request path."""

from __future__ import annotations

import logging
import os

import pytest

from gateway_app.processes import wait_until
from workers import logs


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def handler():
    collect = Collect()
    logs.access.addHandler(collect)
    old_level = logs.access.level
    logs.access.setLevel(logging.INFO)
    yield collect
    logs.access.removeHandler(collect)
    logs.access.setLevel(old_level)


FIELDS = dict(duration=0.0015, request_id="r1", service="s", request_type="t", version=None, mode="sync",
              outcome="ok", node="n1", user_id="u1")


def test_a_request_line_is_written_later_with_the_time_of_the_event(handler):
    deferred = logs.Deferred()
    record = logs._record("request", logs.REQUEST_FIELDS, FIELDS)
    deferred.put(record)
    # the background thread writes it within a few intervals; the event's time is kept
    wait_until(lambda: handler.records, 10, "the deferred access line")
    [written] = handler.records
    assert written is record and written.created == record.created
    assert getattr(written, logs.FIELDS)["duration_ms"] == 1.5


def test_flush_writes_every_pending_line_in_order(handler):
    deferred = logs.Deferred()
    deferred._pid = os.getpid()  # no thread: only flush writes
    for n in range(5):
        deferred.put(logs._record("request", logs.REQUEST_FIELDS, dict(FIELDS, request_id=f"r{n}")))
    assert handler.records == []
    deferred.flush()
    assert [getattr(r, logs.FIELDS)["request_id"] for r in handler.records] == [f"r{n}" for n in range(5)]


def test_a_forked_child_does_not_write_its_parents_pending_lines(handler):
    deferred = logs.Deferred()
    deferred._pid = os.getpid() + 1  # as if this process were the child of the one that queued
    inherited = logs._record("request", logs.REQUEST_FIELDS, dict(FIELDS, request_id="parent"))
    inherited.process = os.getpid() + 1
    deferred._pending.append(inherited)
    own = logs._record("request", logs.REQUEST_FIELDS, dict(FIELDS, request_id="child"))
    deferred.put(own)
    deferred.flush()
    assert [getattr(r, logs.FIELDS)["request_id"] for r in handler.records] == ["child"]


def test_a_failing_handler_does_not_lose_the_other_lines(handler):
    class Broken(logging.Handler):
        def emit(self, record):
            if getattr(record, logs.FIELDS)["request_id"] == "bad":
                raise RuntimeError("disk full")

    broken = Broken()
    broken.handleError = lambda record: (_ for _ in ()).throw(RuntimeError("disk full"))
    logs.access.addHandler(broken)
    complaints = Collect()
    logging.getLogger("genapi.logs").addHandler(complaints)
    try:
        deferred = logs.Deferred()
        deferred._pid = os.getpid()
        for request_id in ("a", "bad", "b"):
            deferred.put(logs._record("request", logs.REQUEST_FIELDS, dict(FIELDS, request_id=request_id)))
        deferred.flush()
    finally:
        logs.access.removeHandler(broken)
        logging.getLogger("genapi.logs").removeHandler(complaints)
    # the collecting handler comes first, so it saw "bad" before the broken one raised
    assert [getattr(r, logs.FIELDS)["request_id"] for r in handler.records] == ["a", "bad", "b"]
    assert [r.getMessage() for r in complaints.records] == ["could not write an access line"]

"""workers.deferred: per-request bookkeeping taken off the request's path."""

from __future__ import annotations

import logging
import os
import threading
import time

from gateway_app.processes import wait_until
from workers import logs
from workers.deferred import Later


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_thread_runs_what_was_put_in_order():
    later, done, seen = Later(), threading.Event(), []
    for n in range(5):
        later.put(seen.append, n)
    later.put(lambda _: done.set(), None)
    assert done.wait(10), "the background thread ran the queue"
    assert seen == [0, 1, 2, 3, 4]


def test_flush_runs_everything_now():
    later, seen = Later(), []
    later._pid = os.getpid()  # as if the thread were running: only flush runs the queue here
    later.put(seen.append, "a")
    later.put(seen.append, "b")
    assert seen == []
    later.flush()
    assert seen == ["a", "b"]


def test_work_queued_before_a_fork_is_not_the_childs():
    later, seen = Later(), []
    later._pid = os.getpid()
    later._pending.append((os.getpid() + 1, seen.append, "the parent's"))  # queued by another process
    later.put(seen.append, "mine")
    later.flush()
    assert seen == ["mine"]


def test_a_failure_is_logged_and_the_rest_still_runs():
    later, seen = Later(), []
    later._pid = os.getpid()
    complaints = Collect()
    logging.getLogger("genapi.deferred").addHandler(complaints)
    try:
        later.put(seen.append, 1)
        later.put(lambda _: 1 / 0, None)
        later.put(seen.append, 2)
        later.flush()
    finally:
        logging.getLogger("genapi.deferred").removeHandler(complaints)
    assert seen == [1, 2]
    assert len(complaints.records) == 1 and complaints.records[0].exc_info[0] is ZeroDivisionError


def test_the_request_line_keeps_the_time_the_request_ended():
    handler = Collect()
    logs.access.addHandler(handler)
    old_level = logs.access.level
    logs.access.setLevel(logging.INFO)
    try:
        before = time.time()
        logs._request_line(None, duration=0.0015, request_id="r1", service="s", request_type="t", version=None,
                           mode="sync", outcome="ok", node="n1", user_id="u1")
        after = time.time()
        wait_until(lambda: handler.records, 10, "the deferred access line")
    finally:
        logs.access.removeHandler(handler)
        logs.access.setLevel(old_level)
    [record] = handler.records
    assert before <= record.created <= after  # when the request ended, not when the line was written
    assert getattr(record, logs.FIELDS)["request_id"] == "r1"
    assert getattr(record, logs.FIELDS)["duration_ms"] == 1.5


def test_the_thread_steps_aside_between_chunks():
    later, seen, pauses = Later(), [], []
    later._pid = os.getpid()
    later._sleep = pauses.append
    for n in range(20):
        later.put(seen.append, n)
    later.flush(pause_every=8)
    assert seen == list(range(20))
    assert pauses == [Later.PAUSE, Later.PAUSE]  # after items 8 and 16



def test_a_backlog_is_run_in_bigger_steps_so_it_stays_bounded():
    later, steps = Later(), []
    later._pid = os.getpid()
    backlog = Later.STEPS * 100

    def pause(_):  # what arrives while the thread steps aside is counted in the next step
        steps.append(len(later._pending))
        if len(steps) == 1:
            for n in range(backlog):
                later.put(id, n)

    later._sleep = pause
    for n in range(20):
        later.put(id, n)
    later.flush(pause_every=8)
    assert not later._pending
    waiting = 12 + backlog  # when the thread came back from its first pause
    assert steps[:2] == [12, waiting - waiting // Later.STEPS]  # then 1/STEPS of what waited, not 8

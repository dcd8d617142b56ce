"""gateway_app.deliveries: the pending-request table and its deadline sweeper."""

from __future__ import annotations

import threading
import time

from gateway_app.deliveries import Deliveries, Pending

WAIT = 10  # seconds: generous upper bound for thread hand-offs, never a synchronisation sleep


def pending(conn="c1", request_id="r", deadline=None, response_type="sync"):
    return Pending(conn=conn, request_id=request_id, response_type=response_type, deadline=deadline)


def test_add_returns_distinct_refs():
    table = Deliveries()
    refs = [table.add(pending(request_id=i)) for i in range(5)]
    assert len(set(refs)) == 5
    assert all(isinstance(ref, str) for ref in refs)
    assert len(table) == 5


def test_take_exactly_once():
    table = Deliveries()
    entry = pending(deadline=time.monotonic() + 60)
    ref = table.add(entry)
    assert table.take(ref) is entry
    assert table.take(ref) is None
    assert len(table) == 0


def test_take_unknown_ref():
    assert Deliveries().take("999") is None


def test_expire_by_deadline():
    table = Deliveries()
    early = pending(request_id="early", deadline=100.0)
    late = pending(request_id="late", deadline=200.0)
    never = pending(request_id="never", deadline=None)
    refs = {p.request_id: table.add(p) for p in (late, never, early)}
    assert table.expire(99.9) == []
    assert table.expire(100.0) == [early]
    assert table.expire(150.0) == []
    assert table.expire(10_000.0) == [late]
    assert len(table) == 1
    assert table.take(refs["never"]) is never
    assert table.take(refs["early"]) is None


def test_expire_returns_in_deadline_order():
    table = Deliveries()
    entries = [pending(request_id=d, deadline=float(d)) for d in (5, 1, 3, 2, 4)]
    for entry in entries:
        table.add(entry)
    assert [p.request_id for p in table.expire(10.0)] == [1, 2, 3, 4, 5]


def test_taken_entry_does_not_expire():
    table = Deliveries()
    entry = pending(deadline=1.0)
    ref = table.add(entry)
    assert table.take(ref) is entry
    assert table.expire(2.0) == []


def test_expired_entry_cannot_be_taken():
    table = Deliveries()
    entry = pending(deadline=1.0)
    ref = table.add(entry)
    assert table.expire(2.0) == [entry]
    assert table.take(ref) is None


def test_drop_connection():
    table = Deliveries()
    a, b = object(), object()
    refs_a = [table.add(pending(conn=a, request_id=i, deadline=1.0)) for i in range(3)]
    ref_b = table.add(pending(conn=b, deadline=1.0))
    assert table.drop_connection(a) == 3
    assert table.drop_connection(a) == 0
    assert len(table) == 1
    assert all(table.take(ref) is None for ref in refs_a)
    assert [p.conn for p in table.expire(2.0)] == [b]
    assert table.take(ref_b) is None


def test_drop_connection_uses_identity_not_equality():
    table = Deliveries()
    table.add(pending(conn=[1]))
    assert table.drop_connection([1]) == 0
    assert len(table) == 1


class Sweeper:
    """Runs ``run_sweeper`` in a thread and records timeouts."""

    def __init__(self, table: Deliveries) -> None:
        self.table = table
        self.timed_out: list[Pending] = []
        self.fired = threading.Event()
        self.thread = threading.Thread(target=table.run_sweeper, args=(self.on_timeout,), daemon=True)

    def on_timeout(self, entry: Pending) -> None:
        self.timed_out.append(entry)
        self.fired.set()

    def __enter__(self) -> Sweeper:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.table.stop()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


def test_sweeper_times_out_an_already_expired_entry():
    table = Deliveries()
    entry = pending(deadline=time.monotonic() - 1)
    ref = table.add(entry)
    with Sweeper(table) as sweeper:
        assert sweeper.fired.wait(WAIT)
    assert sweeper.timed_out == [entry]
    assert table.take(ref) is None


def test_sweeper_wakes_for_an_entry_added_while_idle():
    table = Deliveries()
    with Sweeper(table) as sweeper:
        # the sweeper has no deadline and waits without timeout: add() must wake it up
        entry = pending(deadline=time.monotonic() + 0.05)
        table.add(entry)
        assert sweeper.fired.wait(WAIT)
    assert sweeper.timed_out == [entry]


def test_sweeper_wakes_for_an_earlier_deadline():
    table = Deliveries()
    far = pending(request_id="far", deadline=time.monotonic() + 3600)
    table.add(far)
    with Sweeper(table) as sweeper:
        near = pending(request_id="near", deadline=time.monotonic() - 1)
        table.add(near)
        assert sweeper.fired.wait(WAIT)
    assert sweeper.timed_out == [near]
    assert len(table) == 1


def test_sweeper_skips_answered_entries():
    table = Deliveries()
    answered = pending(request_id="answered", deadline=time.monotonic() - 2)
    table.take(table.add(answered))
    due = pending(request_id="due", deadline=time.monotonic() - 1)
    table.add(due)
    with Sweeper(table) as sweeper:
        assert sweeper.fired.wait(WAIT)
    assert sweeper.timed_out == [due]


def test_stop_ends_an_idle_sweeper():
    table = Deliveries()
    thread = threading.Thread(target=table.run_sweeper, args=(lambda entry: None,), daemon=True)
    thread.start()
    table.stop()
    thread.join(WAIT)
    assert not thread.is_alive()


def test_stop_before_start_returns_at_once():
    table = Deliveries()
    table.stop()
    calls = []
    table.add(pending(deadline=time.monotonic() - 1))
    table.run_sweeper(calls.append)  # returns immediately, in this thread
    assert calls == []


def test_a_failing_timeout_callback_does_not_stop_the_others():
    table = Deliveries()
    for request_id in ("first", "second"):
        table.add(pending(request_id=request_id, deadline=0.0))
    delivered, done = [], threading.Event()

    def on_timeout(entry):
        if entry.request_id == "first":
            raise OSError("socket gone")
        delivered.append(entry.request_id)
        done.set()

    thread = threading.Thread(target=table.run_sweeper, args=(on_timeout,))
    thread.start()
    try:
        assert done.wait(WAIT)
    finally:
        table.stop()
        thread.join(WAIT)
    assert delivered == ["second"] and not thread.is_alive()

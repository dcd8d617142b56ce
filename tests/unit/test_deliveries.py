"""gateway_app.deliveries: the pending-request table and its deadline sweeper."""

from __future__ import annotations

import threading
import time

import pytest

from gateway_app.deliveries import Deliveries, Pending, call_key

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


def test_expire_by_deadline_leaves_entries_for_the_caller_to_settle():
    table = Deliveries()
    early = pending(request_id="early", deadline=100.0)
    late = pending(request_id="late", deadline=200.0)
    never = pending(request_id="never", deadline=None)
    refs = {p.request_id: table.add(p) for p in (late, never, early)}
    assert table.expire(99.9) == []
    assert table.expire(100.0) == [early]
    assert table.expire(150.0) == []  # each deadline is reported once
    assert table.expire(10_000.0) == [late]
    assert len(table) == 3  # expired entries stay until someone takes them
    assert table.take(refs["early"]) is early and table.take(refs["late"]) is late
    assert table.take(refs["never"]) is never


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


def test_an_entry_added_again_gets_a_new_ref_and_the_old_one_finds_nothing():
    table = Deliveries()
    entry = pending(deadline=5.0)
    first = table.add(entry)
    assert table.take(first) is entry
    second = table.add(entry)  # a retry
    assert second != first and entry.ref == second
    assert table.get(first) is None and table.get(second) is entry
    assert table.expire(6.0) == [entry]  # the stale heap entry of the first ref is skipped


def test_entries_of_one_connection_by_identity():
    table = Deliveries()
    a, b = [1], [1]
    mine = [pending(conn=a, request_id=i) for i in range(3)]
    for entry in [*mine, pending(conn=b)]:
        table.add(entry)
    assert table.of_connection(a) == mine
    assert len(table.entries()) == 4


def test_entries_with_a_known_node_and_without_deadline():
    table = Deliveries()
    placed, floating = pending(deadline=None), pending(deadline=1.0)
    placed.node = "w1"
    table.add(placed)
    table.add(floating)
    assert table.on_nodes() == [placed] and table.without_deadline() == [placed]


@pytest.mark.parametrize("request_id", ["r1", 1, 1.5, None, [1, "x"], {"b": 1, "a": [2]}])
def test_every_json_request_id_has_a_key(request_id):
    assert isinstance(call_key(request_id), str)
    assert call_key(request_id) != call_key(str(request_id)) or isinstance(request_id, str)


def test_call_keys_of_equal_objects_are_equal():
    assert call_key({"a": 1, "b": 2}) == call_key({"b": 2, "a": 1})


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
    assert table.take(ref) is entry  # the callback settles it; the sweeper only reports it


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

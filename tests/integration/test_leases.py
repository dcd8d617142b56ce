"""Shared schedules on a real Redis: one round per due time however many processes race."""

from __future__ import annotations

import threading

from gateway_app.leases import Lease, SharedSchedule
from workers.protocol import Keys

KEYS = Keys()


def _race(redis_db, contenders: int = 5) -> tuple[list[str], list[SharedSchedule]]:
    """Several processes' schedules of one job, all checking at the same instant."""
    redis_db.delete("genapi:schedule")
    ran: list[str] = []
    schedules = [SharedSchedule(redis_db, KEYS, "job", f"gw{i}", lambda i=i: ran.append(f"gw{i}") or 60.0,
                                lease_ttl=5) for i in range(contenders)]
    barrier = threading.Barrier(contenders)

    def race(schedule: SharedSchedule) -> None:
        barrier.wait()
        schedule.run_once()

    threads = [threading.Thread(target=race, args=(s,)) for s in schedules]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return ran, schedules


def test_only_one_of_several_schedules_runs_each_due_round(redis_db):
    for attempt in range(20):  # the race is between checking "due" and taking the lease: try it often
        ran, schedules = _race(redis_db)
        assert len(ran) == 1, f"attempt {attempt}: {ran} ran"
        # the next round is 60 s away for every one of them
        assert not any(s.run_once() for s in schedules) and len(ran) == 1


def test_due_now_runs_a_round_before_its_time(redis_db):
    ran = []
    forced = {"value": False}
    schedule = SharedSchedule(redis_db, KEYS, "job", "gw", lambda: ran.append(1) or 60.0, lease_ttl=5,
                              due_now=lambda: forced["value"])
    assert schedule.run_once() and not schedule.run_once()
    forced["value"] = True
    assert schedule.run_once() and len(ran) == 2


def test_a_round_that_raises_is_retried_later_not_every_tick(redis_db):
    calls = []

    def broken() -> float:
        calls.append(1)
        raise RuntimeError("bug")

    schedule = SharedSchedule(redis_db, KEYS, "job", "gw", broken, lease_ttl=5)
    assert schedule.run_once()
    assert not schedule.run_once() and len(calls) == 1
    due = int(redis_db.hget("genapi:schedule", "job:next"))
    seconds, micros = redis_db.time()
    assert 9_000 < due - (seconds * 1000 + micros // 1000) <= SharedSchedule.RETRY_AFTER * 1000
    assert redis_db.get("genapi:lease:job") is None  # released


def test_a_lease_is_released_only_by_its_owner(redis_db):
    mine, theirs = Lease(redis_db, KEYS, "x", "me"), Lease(redis_db, KEYS, "x", "them")
    assert mine.acquire(5) and not theirs.acquire(5)
    theirs.release()
    assert redis_db.get("genapi:lease:x") == b"me"
    mine.release()
    assert theirs.acquire(5)

"""gateway_app.breakers without Redis: the operator listing, events, the local view, and
which call outcomes count as failures or successes (the scripts are recorded, not run)."""

from __future__ import annotations

import pytest
import redis

from gateway_app import breakers
from gateway_app.breakers import Breakers, View, describe
from gateway_app.deliveries import Pending
from gateway_app.errors import Rejected
from gateway_app.replies import Outcome
from workers.funconfig import FunConfig
from workers.policy_config import BreakerConfig
from workers.protocol import UNAVAILABLE, Keys

FAR = 2**62  # an opened_until_ms that never passes
PAST = 1  # one that passed long ago


class StubClient:
    """Stands in for redis.Redis: scripts record their calls; the pipeline is the client
    itself, whose ``execute`` answers ``results`` (or raises it)."""

    def __init__(self, results=None, answer=1):
        self.calls: list[tuple] = []
        self.results = results
        self.answer = answer

    def register_script(self, source):
        def run(keys, args, client=None):
            self.calls.append((source, keys, args, client))
            return self.answer
        return run

    def pipeline(self, transaction=True):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self):
        if isinstance(self.results, Exception):
            raise self.results
        return self.results


KEYS = Keys()
CONFIG = BreakerConfig(service_threshold=7, worker_threshold=3, cooldown_ms=1500)


def make(results=None, answer=1, views=None) -> tuple[Breakers, StubClient]:
    client = StubClient(results, answer)
    b = Breakers(client, KEYS, CONFIG)
    b.views.update(views or {})
    return b, client


def pending(node="n1", config=True) -> Pending:
    return Pending(conn=None, request_id="r", response_type="sync", deadline=None, node=node,
                   config=FunConfig(service="svc", request_type="rt") if config else None)


# ------------------------------------------------------------------ describe


def test_describe_closed_service_breaker():
    assert describe({"service:svc": {"failures": 3, "opened_until_ms": 0}}, now_ms=1000) == [{
        "name": "service:svc", "scope": "service", "service": "svc", "node": None, "state": "closed",
        "failures": 3, "opened_until_ms": None}]


def test_describe_open_worker_breaker():
    [entry] = describe({"worker:svc:n1": {"failures": 5, "opened_until_ms": 2000}}, now_ms=1000)
    assert entry == {"name": "worker:svc:n1", "scope": "worker", "service": "svc", "node": "n1", "state": "open",
                     "failures": 5, "opened_until_ms": 2000}


@pytest.mark.parametrize("now", [2000, 2001])
def test_describe_half_open_once_the_cooldown_is_over(now):
    [entry] = describe({"service:svc": {"failures": 10, "opened_until_ms": 2000}}, now_ms=now)
    assert entry["state"] == "half_open"


def test_describe_node_names_may_hold_colons():
    [entry] = describe({"worker:svc:celery@host:1": {"failures": 1, "opened_until_ms": 0}}, now_ms=0)
    assert (entry["service"], entry["node"]) == ("svc", "celery@host:1")


def test_describe_sorted_by_name_with_missing_fields_defaulted():
    listing = describe({"worker:b:n": {}, "service:b": {"failures": 1}, "service:a": {"opened_until_ms": 0}},
                       now_ms=0)
    assert [e["name"] for e in listing] == ["service:a", "service:b", "worker:b:n"]
    assert [e["failures"] for e in listing] == [0, 1, 0]
    assert all(e["state"] == "closed" and e["opened_until_ms"] is None for e in listing)


def test_describe_nothing():
    assert describe({}) == []


# ------------------------------------------------------------------ View


def test_view_never_opened_is_not_open():
    assert View(4, 0).open_at(0) is False


def test_view_open_until_its_cooldown_ends():
    view = View(5, 2000)
    assert view.open_at(1999) is True
    assert view.open_at(2000) is False
    assert view.open_at(2001) is False


# ------------------------------------------------------------------ on_event


def test_on_event_records_failures_and_opening():
    b, _ = make()
    b.on_event({"event": "breaker", "name": "service:svc", "failures": 1, "opened_until_ms": 0})
    assert b.views == {"service:svc": View(1, 0)}
    b.on_event({"event": "breaker", "name": "service:svc", "failures": 7, "opened_until_ms": FAR})
    assert b.views == {"service:svc": View(7, FAR)}


def test_on_event_close_forgets_the_breaker():
    b, _ = make(views={"service:svc": View(7, FAR), "worker:svc:n1": View(1, 0)})
    b.on_event({"event": "breaker", "name": "service:svc", "failures": 0, "opened_until_ms": 0})
    assert b.views == {"worker:svc:n1": View(1, 0)}


def test_on_event_missing_counts_are_zero():
    b, _ = make(views={"service:svc": View(2, 0)})
    b.on_event({"event": "breaker", "name": "service:svc", "failures": None})
    assert b.views == {}


@pytest.mark.parametrize("event", [{"event": "breaker", "failures": 3}, {"event": "breaker", "name": 5,
                                                                          "failures": 3}])
def test_on_event_without_a_name_is_ignored(event):
    b, _ = make(views={"service:svc": View(2, 0)})
    b.on_event(event)
    assert b.views == {"service:svc": View(2, 0)}


def test_on_event_opened_only_keeps_a_view():
    b, _ = make()
    b.on_event({"event": "breaker", "name": "worker:svc:n1", "failures": 0, "opened_until_ms": FAR})
    assert b.views == {"worker:svc:n1": View(0, FAR)}


# ------------------------------------------------------------------ open_workers


def test_open_workers_none_known():
    b, _ = make()
    assert b.open_workers("svc") == set()


def test_open_workers_only_this_services_open_worker_breakers():
    b, _ = make(views={
        "worker:svc:n1": View(3, FAR),            # open
        "worker:svc:n2": View(3, PAST),           # cooldown over
        "worker:svc:n3": View(2, 0),              # failures, never opened
        "worker:svc2:n4": View(3, FAR),           # another service (a prefix of whose name is "svc")
        "worker:other:n5": View(3, FAR),          # another service
        "service:svc": View(7, FAR),              # the service breaker is not a worker
    })
    assert b.open_workers("svc") == {"n1"}
    assert b.open_workers("svc2") == {"n4"}
    assert b.open_workers("nobody") == set()


def test_open_workers_node_names_with_colons():
    b, _ = make(views={"worker:svc:celery@host:1": View(3, FAR)})
    assert b.open_workers("svc") == {"celery@host:1"}


# ------------------------------------------------------------------ admit (no Redis while closed or open)


def test_admit_without_a_view_lets_the_call_through():
    b, client = make(views={"worker:svc:n1": View(3, FAR)})
    b.admit("svc", 5000)
    assert client.calls == []


def test_admit_with_failures_but_never_opened_lets_the_call_through():
    b, client = make(views={"service:svc": View(6, 0)})
    b.admit("svc", 5000)
    assert client.calls == []


def test_admit_open_service_breaker_is_unavailable_without_redis():
    b, client = make(views={"service:svc": View(7, FAR)})
    with pytest.raises(Rejected) as caught:
        b.admit("svc", 5000)
    assert (caught.value.error, caught.value.can_retry, caught.value.code) == (UNAVAILABLE, True, "breaker_open")
    assert client.calls == []


def test_admit_after_the_cooldown_claims_the_trial():
    b, client = make(answer=1, views={"service:svc": View(7, PAST)})
    b.admit("svc", 5000)
    [(source, keys, args, _)] = client.calls
    assert source == breakers._TRIAL
    assert keys == [KEYS.breaker("service:svc")]
    assert args[1] == 5000


def test_admit_trial_of_an_infinite_call_lasts_a_cooldown():
    b, client = make(answer=1, views={"service:svc": View(7, PAST)})
    b.admit("svc", None)
    assert client.calls[0][2][1] == CONFIG.cooldown_ms


def test_admit_after_the_cooldown_without_the_trial_is_unavailable():
    b, _ = make(answer=0, views={"service:svc": View(7, PAST)})
    with pytest.raises(Rejected) as caught:
        b.admit("svc", 5000)
    assert caught.value.error == UNAVAILABLE and caught.value.can_retry is True


# ------------------------------------------------------------------ after_call: what counts


def failure_calls(client):
    return [(keys, args) for source, keys, args, _ in client.calls if source == breakers._FAILURE]


def success_calls(client):
    return [(keys, args) for source, keys, args, _ in client.calls if source == breakers._SUCCESS]


@pytest.mark.parametrize("outcome", [Outcome("timeout"), Outcome("lost"),
                                     Outcome("error", error="ValueError: boom", unexpected=True)])
def test_real_failures_count_against_service_and_worker(outcome):
    b, client = make(results=[[1, 0], [1, 0]])
    assert b.after_call(None, pending("n1"), outcome) is False
    calls = failure_calls(client)
    assert [keys for keys, _ in calls] == [
        [KEYS.breaker("service:svc"), KEYS.breakers, KEYS.events],
        [KEYS.breaker("worker:svc:n1"), KEYS.breakers, KEYS.events]]
    assert [(args[0], args[2], args[3]) for _, args in calls] == [("service:svc", 7, 1500), ("worker:svc:n1", 3, 1500)]
    assert all(isinstance(args[1], int) for _, args in calls)
    assert all(c[3] is client for c in client.calls)  # sent through the pipeline
    assert success_calls(client) == []


def test_the_outcomes_node_wins_over_the_chosen_one():
    b, client = make(results=[[1, 0], [1, 0]])
    b.after_call(None, pending("chosen"), Outcome("timeout", node="ran-here"))
    assert [args[0] for _, args in failure_calls(client)] == ["service:svc", "worker:svc:ran-here"]


def test_failure_without_a_node_counts_against_the_service_only():
    b, client = make(results=[[1, 0]])
    b.after_call(None, pending(None), Outcome("timeout"))
    assert [args[0] for _, args in failure_calls(client)] == ["service:svc"]


def test_failure_updates_the_local_view():
    b, _ = make(results=[[7, FAR], [2, 0]])
    b.after_call(None, pending("n1"), Outcome("lost"))
    assert b.views == {"service:svc": View(7, FAR), "worker:svc:n1": View(2, 0)}


def test_worker_breaker_opened_by_a_failure_takes_it_out_of_selection():
    b, _ = make(results=[[1, 0], [3, FAR]])
    b.after_call(None, pending("n1"), Outcome("timeout"))
    assert b.open_workers("svc") == {"n1"}


@pytest.mark.parametrize("kind", ["rejected", "cancelled", "disconnected", "draining", "dispatch_failed",
                                  "no_live_worker", "slow_client"])
def test_outcomes_that_say_nothing_about_the_service_are_not_counted(kind):
    b, client = make(results=[[1, 0], [1, 0]], views={"service:svc": View(3, 0), "worker:svc:n1": View(1, 0)})
    assert b.after_call(None, pending("n1"), Outcome(kind, error="x")) is False
    assert client.calls == []
    assert b.views == {"service:svc": View(3, 0), "worker:svc:n1": View(1, 0)}


def test_worker_side_permission_denial_is_not_a_failure():
    b, client = make()
    b.after_call(None, pending("n1"), Outcome("rejected", error="Permission denied", node="n1"))
    assert client.calls == []


@pytest.mark.parametrize("outcome", [Outcome("result", data=1), Outcome("last"), Outcome("end"),
                                     Outcome("error", error="Quota exceeded")])
def test_success_or_deliberate_error_resets_breakers_with_failures(outcome):
    b, client = make(results=[1, 1], views={"service:svc": View(3, 0), "worker:svc:n1": View(1, 0)})
    b.after_call(None, pending("n1"), outcome)
    assert failure_calls(client) == []
    assert [(keys, args[0]) for keys, args in success_calls(client)] == [
        ([KEYS.breaker("service:svc"), KEYS.breakers, KEYS.events], "service:svc"),
        ([KEYS.breaker("worker:svc:n1"), KEYS.breakers, KEYS.events], "worker:svc:n1")]
    assert b.views == {}


def test_success_costs_nothing_while_the_breakers_are_clean():
    b, client = make(views={"service:other": View(3, 0)})
    b.after_call(None, pending("n1"), Outcome("result", data=1))
    assert client.calls == []


def test_success_resets_only_the_breakers_with_state():
    b, client = make(results=[1], views={"worker:svc:n1": View(2, 0), "worker:svc:n2": View(2, 0)})
    b.after_call(None, pending("n1"), Outcome("result"))
    assert [args[0] for _, args in success_calls(client)] == ["worker:svc:n1"]
    assert b.views == {"worker:svc:n2": View(2, 0)}


def test_late_success_while_open_keeps_the_view():
    b, _ = make(results=[0], views={"service:svc": View(7, FAR)})
    b.after_call(None, pending(None), Outcome("result"))
    assert b.views == {"service:svc": View(7, FAR)}


def test_a_call_without_a_config_is_not_counted():
    b, client = make()
    assert b.after_call(None, pending("n1", config=False), Outcome("timeout")) is False
    assert client.calls == []


def test_redis_errors_are_swallowed():
    views = {"service:svc": View(3, 0)}
    b, _ = make(results=redis.ConnectionError("down"), views=views)
    assert b.after_call(None, pending(None), Outcome("timeout")) is False
    assert b.after_call(None, pending(None), Outcome("result")) is False
    assert b.views == {"service:svc": View(3, 0)}

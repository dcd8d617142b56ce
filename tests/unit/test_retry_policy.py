"""gateway_app.retry: the ``retry`` option as a policy, and the after-call hook that re-dispatches
failed attempts (``retry_later`` is a stub that records what it was asked)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from gateway_app.deliveries import Pending
from gateway_app.replies import Outcome
from gateway_app.retry import Retry, policy


@pytest.mark.parametrize("retry, expected", [
    (None, None),
    (3, ("all_nodes", 3)),
    (2.9, ("all_nodes", 2)),
    ({"same_node": 2}, ("same_node", 2)),
    ({"same_node": 1.7}, ("same_node", 1)),
    ({"all_nodes": 4}, ("all_nodes", 4)),
    ({"all_nodes": 3.99}, ("all_nodes", 3)),
])
def test_policy_of_every_retry_form(retry, expected):
    assert policy(retry) == expected


class RecordingReplies:
    def __init__(self) -> None:
        self.retries: list[tuple] = []

    def retry_later(self, pending, delay, same, avoid) -> None:
        self.retries.append((pending, delay, same, avoid))


def make_gateway() -> SimpleNamespace:
    return SimpleNamespace(replies=RecordingReplies())


def pending(retry, deadline: float | None = None, node: str | None = "n1", conn_open: bool = True) -> Pending:
    return Pending(SimpleNamespace(open=conn_open, identity=None), "r", "async", deadline, task="svc.add",
                   config=SimpleNamespace(retry=retry, service="svc", request_type="add", version=None), node=node)


KINDS = ["result", "last", "end", "error", "timeout", "lost", "cancelled", "disconnected", "draining",
         "dispatch_failed", "no_live_worker", "slow_client"]


@pytest.mark.parametrize("kind", KINDS)
def test_only_errors_and_lost_workers_are_retried(kind):
    gateway, call = make_gateway(), pending(3)
    taken = Retry().after_call(gateway, call, Outcome(kind, error="boom"))
    assert taken is (kind in ("error", "lost"))
    assert len(gateway.replies.retries) == (1 if taken else 0)


@pytest.mark.parametrize("retry", [None, 0, {"all_nodes": 0}])
def test_no_retry_without_a_policy(retry):
    gateway = make_gateway()
    assert Retry().after_call(gateway, pending(retry), Outcome("error")) is False
    assert gateway.replies.retries == []


def test_a_call_without_a_config_is_not_retried():
    gateway, call = make_gateway(), pending(3)
    call.config = None
    assert Retry().after_call(gateway, call, Outcome("error")) is False


@pytest.mark.parametrize("retry, n", [(3, 3), (2.5, 2), ({"same_node": 1}, 1), ({"all_nodes": 4}, 4)])
def test_exactly_n_retries_then_the_outcome_stands(retry, n):
    gateway, call, hook = make_gateway(), pending(retry), Retry()
    results = [hook.after_call(gateway, call, Outcome("error", node="n1")) for _ in range(n + 2)]
    assert results == [True] * n + [False, False]
    assert call.retries == n and len(gateway.replies.retries) == n


def test_the_first_retry_waits_longest():
    gateway, call, hook = make_gateway(), pending(3), Retry()
    for _ in range(3):
        hook.after_call(gateway, call, Outcome("lost"))
    delays = [delay for _, delay, _, _ in gateway.replies.retries]
    # about 400, 200 then 100 ms, each with jitter in [0.5, 1.5)
    for delay, base in zip(delays, (0.4, 0.2, 0.1), strict=True):
        assert 0.5 * base <= delay < 1.5 * base


def test_no_retry_when_the_deadline_comes_before_the_backoff_ends():
    gateway = make_gateway()
    soon = pending(1, deadline=time.monotonic() + 0.04)  # the backoff of one retry is at least 50 ms
    assert Retry().after_call(gateway, soon, Outcome("error")) is False
    assert gateway.replies.retries == [] and soon.retries == 0


def test_a_retry_that_fits_before_the_deadline_is_made():
    gateway = make_gateway()
    later = pending(1, deadline=time.monotonic() + 60)
    assert Retry().after_call(gateway, later, Outcome("error")) is True


def test_no_retry_once_the_connection_is_closed():
    gateway = make_gateway()
    assert Retry().after_call(gateway, pending(3, conn_open=False), Outcome("error")) is False
    assert gateway.replies.retries == []


def test_same_node_goes_back_to_the_node_that_failed():
    gateway, call = make_gateway(), pending({"same_node": 2}, node="n1")
    Retry().after_call(gateway, call, Outcome("error", node="n2"))  # the reply names its node
    [(retried, _, same, avoid)] = gateway.replies.retries
    assert retried is call and same == "n2" and avoid == set()


def test_all_nodes_avoids_the_node_that_failed():
    gateway, call = make_gateway(), pending({"all_nodes": 2}, node="n1")
    Retry().after_call(gateway, call, Outcome("lost"))  # a lost worker: the call's own node
    [(retried, _, same, avoid)] = gateway.replies.retries
    assert retried is call and same is None and avoid == {"n1"}


def test_a_failure_on_an_unknown_node_avoids_nothing():
    for retry in (2, {"same_node": 2}):
        gateway = make_gateway()
        Retry().after_call(gateway, pending(retry, node=None), Outcome("error"))
        [(_, _, same, avoid)] = gateway.replies.retries
        assert same is None and avoid == set()

"""The overload limits without sockets or workers: the per-connection count, the queue
estimate and its sampler (against a stub Redis pipeline), the pipeline step, the settings."""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace

import pytest
import redis

from gateway_app import pipeline
from gateway_app.auth import Identity
from gateway_app.cache import Snapshot
from gateway_app.deliveries import Deliveries, Handle
from gateway_app.errors import Rejected
from gateway_app.hooks import GatewayHooks
from gateway_app.overload import MAX_READ_PAUSE, READ_PAUSE, Backoff, InFlight, LimitOverload, QueueLengths
from gateway_app.replies import Outcome, Replies
from gateway_app.selection import Choice, NodeSelector
from workers.funconfig import load_funconfig
from workers.protocol import UNAVAILABLE, Keys
from workers.registry import NodeInfo
from workers.settings import Settings, SettingsError
from workers.signals import executor_request_stop

# ------------------------------------------------------------------ stub Redis


class StubPipeline:
    def __init__(self, client):
        self.client = client
        self.queues: list[str] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def llen(self, queue):
        self.queues.append(queue)

    def execute(self):
        self.client.round_trips += 1
        if self.client.down:
            raise redis.ConnectionError("down")
        if self.client.during is not None:
            self.client.during()
        return [self.client.lengths.get(q, 0) for q in self.queues]


class StubRedis:
    """Answers LLEN from ``lengths``; ``down`` makes every round trip fail; ``during`` runs
    while a round trip is in flight (between the request and the answer)."""

    def __init__(self, **lengths):
        self.lengths = lengths
        self.down = False
        self.during = None
        self.round_trips = 0

    def pipeline(self, transaction=False):
        return StubPipeline(self)


# ------------------------------------------------------------------ InFlight



class Peer:
    """A stand-in connection (weakly referenceable, as the real one is)."""

def test_in_flight_counts_per_connection_and_forgets_idle_connections():
    counts, a, b = InFlight(), object(), object()
    counts.add(a)
    counts.add(a)
    counts.add(b)
    assert (counts.of(a), counts.of(b), len(counts)) == (2, 1, 2)
    counts.remove(a)
    counts.remove(b)
    assert (counts.of(a), counts.of(b), len(counts)) == (1, 0, 1)
    counts.remove(a)
    counts.remove(a)  # one too many (a call settled that never started) never goes negative
    assert counts.of(a) == 0 and len(counts) == 0


def test_in_flight_is_exact_under_threads():
    counts, conn = InFlight(), object()

    def churn():
        for _ in range(2000):
            counts.add(conn)
            counts.remove(conn)

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts.of(conn) == 0 and len(counts) == 0


# ------------------------------------------------------------------ QueueLengths


def test_sample_sets_lengths_and_keeps_calls_sent_during_the_round_trip():
    client = StubRedis(q1=7)
    queues = QueueLengths(client)
    level = queues.level("q1")
    level.sent = 5  # admitted before the sample was asked for: now inside LLEN

    def more_sent():
        level.sent += 2  # admitted while the LLEN was on its way

    client.during = more_sent
    queues.sample()
    assert (level.sampled, level.sent, level.estimate) == (7, 2, 9)


def test_sample_reads_every_watched_queue_in_one_round_trip_and_none_without_queues():
    client = StubRedis(a=1, b=2)
    queues = QueueLengths(client)
    queues.sample()
    assert client.round_trips == 0
    queues.level("a")
    queues.level("b")
    queues.sample()
    assert client.round_trips == 1
    assert (queues.levels["a"].sampled, queues.levels["b"].sampled) == (1, 2)


def test_a_queue_nobody_calls_is_forgotten_after_idle_samples():
    queues = QueueLengths(StubRedis(), idle_samples=3)
    queues.level("q")
    for _ in range(3):  # the first sample clears the "touched" of its creation
        queues.sample()
    assert "q" in queues.levels
    queues.sample()
    assert "q" not in queues.levels


def test_run_backs_off_keeps_values_then_fails_open_and_recovers(caplog):
    client = StubRedis(q=5)
    queues = QueueLengths(client, interval=0.001, stale_after=0.05)
    queues.level("q")
    queues.sample()
    client.down = True
    thread = threading.Thread(target=queues.run)
    with caplog.at_level(logging.INFO, logger="genapi.gateway"):
        thread.start()
        try:
            _wait_for(lambda: not queues.fresh)
            assert queues.levels["q"].sampled == 5  # the last value is kept
            failing = client.round_trips
            _wait_for(lambda: client.round_trips > failing)
            client.down = False
            client.lengths["q"] = 1
            _wait_for(lambda: queues.fresh and queues.levels["q"].sampled == 1)
        finally:
            queues.stop()
            thread.join(5)
    assert not thread.is_alive()
    warnings = [r for r in caplog.records if "not applied" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per attempt
    assert any("applies again" in r.getMessage() for r in caplog.records)


def test_for_broker_samples_redis_brokers_only():
    assert QueueLengths.for_broker("amqp://guest@localhost//") is None
    sampler = QueueLengths.for_broker("redis://127.0.0.1:1/0")
    assert isinstance(sampler, QueueLengths)
    sampler.client.close()


def _wait_for(predicate, timeout=5.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        event.wait(0.005)
    raise AssertionError("condition not reached in time")


# ------------------------------------------------------------------ the step


def call_to(queue: str, conn=None):
    return SimpleNamespace(conn=conn or Peer(), choice=Choice(queue))


def stub_gateway():
    return SimpleNamespace(replies=SimpleNamespace(in_flight=InFlight()))


def test_step_refuses_at_the_queue_limit_counting_its_own_sends():
    queues = QueueLengths(StubRedis())
    step, gateway = LimitOverload(0, 3, queues), stub_gateway()
    queues.level("q").sampled = 1
    step(gateway, call_to("q"))
    step(gateway, call_to("q"))  # 1 sampled + 2 sent: the burst is bounded before any sample
    with pytest.raises(Rejected) as refused:
        step(gateway, call_to("q"))
    assert (refused.value.error, refused.value.can_retry, refused.value.code) == (UNAVAILABLE, True, "queue_full")
    step(gateway, call_to("other"))  # each queue has its own level
    assert queues.levels["q"].sent == 2 and queues.levels["other"].sent == 1


def test_step_admits_everything_while_the_samples_are_stale():
    queues = QueueLengths(StubRedis())
    step = LimitOverload(0, 1, queues)
    queues.level("q").sampled = 50
    queues.fresh = False
    step(stub_gateway(), call_to("q"))


def test_step_refuses_at_the_in_flight_cap_of_the_connection_only():
    step, gateway = LimitOverload(2, 0, None), stub_gateway()
    busy, other = Peer(), Peer()
    gateway.replies.in_flight.add(busy)
    step(gateway, call_to("q", busy))
    gateway.replies.in_flight.add(busy)
    with pytest.raises(Rejected) as refused:
        step(gateway, call_to("q", busy))
    assert refused.value.code == "in_flight_limit" and refused.value.can_retry
    step(gateway, call_to("q", other))


def test_zero_switches_both_limits_off():
    queues = QueueLengths(StubRedis())
    step, gateway = LimitOverload(0, 0, queues), stub_gateway()
    assert step.queues is None
    for _ in range(5):
        gateway.replies.in_flight.add("conn")
    step(gateway, call_to("q", "conn"))
    assert queues.levels == {}


# ------------------------------------------------------------------ through the pipeline


class Conn:
    """A connection that keeps the frames it is given."""

    def __init__(self):
        self.identity = Identity("alice", ("admin",))
        self.public = self.binary = False
        self.address = "127.0.0.1"
        self.calls: dict = {}
        self.frames: list[dict] = []

    def send(self, frame: dict, terminal: bool = True) -> bool:
        self.frames.append(frame)
        return True


class Broker:
    """Records what is sent; ``fail`` makes the broker refuse."""

    def __init__(self):
        self.sent: list[str] = []
        self.fail = False

    def send(self, task_name, args, queue, timeout_s, meta, *, sensitive=()):
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append(queue)
        return Handle(f"t{len(self.sent)}", queue)


def overloaded_gateway(response_type: str, max_in_flight: int = 0, max_queue_length: int = 0):
    fun = load_funconfig({"service": "svc", "request_type": "f", "response_type": response_type})
    worker = NodeInfo("n1", frozenset({"svc"}), frozenset({fun.task_name}), "n1.dq2", expires_ms=2**62)
    queues = QueueLengths(StubRedis())
    step = LimitOverload(max_in_flight, max_queue_length, queues)
    gateway = SimpleNamespace(
        settings=Settings(), steps=pipeline.build_steps(NodeSelector(None, Keys()), overload=step),
        deliveries=Deliveries(), cache=SimpleNamespace(snapshot=Snapshot({("svc", "f"): {fun.version: fun}},
                                                                          {"n1": worker})),
        dispatcher=Broker(), reply_channel="genapi:reply:test", listening=True, draining=False,
        detail_error=False, hooks=GatewayHooks(5000), breakers=None, tracing=None, cancel_remote=lambda p: None,
        backoff=Backoff())
    gateway.replies = Replies(gateway)
    return gateway, queues


def request(request_id="r", service="svc", request_type="f") -> str:
    return json.dumps({"service": service, "request_type": request_type, "request_id": request_id})


@pytest.mark.parametrize("mode", ["sync", "async", "stream", "none"])
def test_every_mode_gets_the_refusal_frame_and_nothing_is_dispatched(mode):
    gateway, queues = overloaded_gateway(mode, max_queue_length=1)
    queues.level("genapi.svc").sampled = 1
    conn = Conn()
    pipeline.run(gateway, conn, request())
    assert conn.frames == [{"request_id": "r", "result": None, "success": False,
                            "error": "Service temporarily unavailable", "async": False, "has_more": False,
                            "can_retry": True}]
    assert gateway.dispatcher.sent == [] and len(gateway.deliveries) == 0


def test_the_cap_counts_calls_until_they_are_settled():
    gateway, _ = overloaded_gateway("sync", max_in_flight=2)
    conn = Conn()
    for request_id in ("r1", "r2", "r3"):
        pipeline.run(gateway, conn, request(request_id))
    assert [f["request_id"] for f in conn.frames] == ["r3"]  # refused at once; the others wait
    assert len(gateway.dispatcher.sent) == 2 and gateway.replies.in_flight.of(conn) == 2
    first = gateway.deliveries.entries()[0]
    gateway.replies.settle(first, Outcome("result", data=1))
    pipeline.run(gateway, conn, request("r4"))
    assert len(gateway.dispatcher.sent) == 3 and gateway.replies.in_flight.of(conn) == 2


def test_a_disconnect_releases_every_place():
    gateway, _ = overloaded_gateway("async", max_in_flight=5)
    conn = Conn()
    for request_id in ("a", "b"):
        pipeline.run(gateway, conn, request(request_id))
    gateway.replies.disconnected(conn)
    assert gateway.replies.in_flight.of(conn) == 0 and len(gateway.replies.in_flight) == 0


def test_none_calls_never_count_but_are_refused_at_the_cap():
    gateway, _ = overloaded_gateway("none", max_in_flight=1)
    conn = Conn()
    for request_id in ("a", "b", "c"):
        pipeline.run(gateway, conn, request(request_id))
    assert len(gateway.dispatcher.sent) == 3 and conn.frames == []
    gateway.replies.in_flight.add(conn)
    pipeline.run(gateway, conn, request("d"))
    assert [f["error"] for f in conn.frames] == [UNAVAILABLE]


def test_builtins_are_never_refused():
    gateway, queues = overloaded_gateway("sync", max_in_flight=1, max_queue_length=1)
    conn = Conn()
    gateway.replies.in_flight.add(conn)
    pipeline.run(gateway, conn, request("p", service="gateway", request_type="ping"))
    assert conn.frames[0]["success"] is True and queues.levels == {}


def test_a_failed_dispatch_releases_its_place():
    gateway, _ = overloaded_gateway("async", max_in_flight=1)
    gateway.dispatcher.fail = True
    conn = Conn()
    pipeline.run(gateway, conn, request())
    assert gateway.replies.in_flight.of(conn) == 0
    assert conn.frames[-1]["error"] == UNAVAILABLE


def test_a_refused_call_is_reported_with_its_code():
    gateway, queues = overloaded_gateway("sync", max_queue_length=1)
    queues.level("genapi.svc").sampled = 5
    seen = []

    def receiver(sender, **fields):
        seen.append(fields["outcome"])

    executor_request_stop.connect(receiver)
    try:
        pipeline.run(gateway, Conn(), request())
    finally:
        executor_request_stop.disconnect(receiver)
    assert seen == ["queue_full"]


# ------------------------------------------------------------------ settings


def test_settings_defaults_and_zero():
    assert (Settings().max_in_flight, Settings().max_queue_length) == (1000, 10_000)
    settings = Settings.from_env({"GENAPI_MAX_IN_FLIGHT": "0", "GENAPI_MAX_QUEUE_LENGTH": "0"})
    assert (settings.max_in_flight, settings.max_queue_length) == (0, 0)


@pytest.mark.parametrize("name, value, message", [
    ("GENAPI_MAX_IN_FLIGHT", "-1", "GENAPI_MAX_IN_FLIGHT must be between 0 and 1000000, got -1"),
    ("GENAPI_MAX_IN_FLIGHT", "many", "GENAPI_MAX_IN_FLIGHT must be an integer, got 'many'"),
    ("GENAPI_MAX_QUEUE_LENGTH", "100000001",
     "GENAPI_MAX_QUEUE_LENGTH must be between 0 and 100000000, got 100000001"),
    ("GENAPI_MAX_QUEUE_LENGTH", "1e4", "GENAPI_MAX_QUEUE_LENGTH must be an integer, got '1e4'"),
])
def test_settings_validation_messages(name, value, message):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value})
    assert str(error.value) == message




def test_a_refused_connection_pauses_longer_each_time_in_a_row_and_starts_over_when_admitted():
    backoff, conn = Backoff(), Peer()
    pauses = [backoff.refused(conn) for _ in range(8)]
    for n, pause in enumerate(pauses):
        expected = min(MAX_READ_PAUSE, READ_PAUSE * 2 ** n)
        assert 0.5 * expected <= pause <= 1.5 * expected
    backoff.admitted(conn)
    assert backoff.refused(conn) <= 1.5 * READ_PAUSE


def test_only_an_unavailable_refusal_asks_the_connection_to_pause_its_reading():
    gateway, _ = overloaded_gateway("sync", max_in_flight=1)
    conn = Conn()
    assert pipeline.run(gateway, conn, request("admitted")) == 0.0
    first = pipeline.run(gateway, conn, request("refused"))
    assert 0.5 * READ_PAUSE <= first <= 1.5 * READ_PAUSE
    assert 1.0 * READ_PAUSE <= pipeline.run(gateway, conn, request("again")) <= 3.0 * READ_PAUSE  # doubled
    assert pipeline.run(gateway, conn, request("unknown", request_type="nope")) == 0.0  # other refusals: none


def test_no_live_worker_refusals_pause_reading_too_and_a_dispatched_call_starts_over():
    gateway, _ = overloaded_gateway("sync")
    workers = gateway.cache.snapshot.nodes
    gateway.cache.snapshot = Snapshot(gateway.cache.snapshot.functions, {})  # the only worker is gone
    conn = Conn()
    pauses = [pipeline.run(gateway, conn, request(f"r{i}")) for i in range(3)]
    assert [frame["error"] for frame in conn.frames] == ["Service temporarily unavailable"] * 3
    for n, pause in enumerate(pauses):
        assert 0.5 * READ_PAUSE * 2 ** n <= pause <= 1.5 * READ_PAUSE * 2 ** n
    gateway.cache.snapshot = Snapshot(gateway.cache.snapshot.functions, workers)  # back
    assert pipeline.run(gateway, conn, request("dispatched")) == 0.0
    assert len(gateway.dispatcher.sent) == 1
    gateway.cache.snapshot = Snapshot(gateway.cache.snapshot.functions, {})
    assert pipeline.run(gateway, conn, request("refused again")) <= 1.5 * READ_PAUSE  # the streak started over

"""Celery task events cost about 0.5 ms per call, so nothing sends them unless asked: a worker
without ``-E`` and no Flower sends none, and a gateway sends no ``task-sent`` event. With
``GENAPI_TASK_EVENTS=1`` the worker sends them and the gateway sends ``task-sent`` (what makes
a queued call visible in Flower), and a Celery event receiver reads them like Celery's own."""

from __future__ import annotations

import json
import threading
import uuid
from base64 import b64decode

import pytest

from gateway_app.dispatch import RedisQueueDispatcher, event_channel, for_broker
from gateway_app.processes import wait_until
from workers.celery_app import create_celery_app
from workers.settings import Settings

from .conftest import call, request

ADD = request("add", {"a": 20, "b": 22})


class EventLog:
    """A Celery event receiver (what Flower runs) on the broker, in a thread of its own."""

    def __init__(self, broker_url: str) -> None:
        self.app = create_celery_app(Settings(redis_url=broker_url, broker_url=broker_url))
        self.events: list[dict] = []
        self.connection = self.app.connection_for_read()
        self.receiver = self.app.events.Receiver(self.connection, handlers={"*": self.events.append})
        self.thread = threading.Thread(target=self.receiver.capture, kwargs={"wakeup": False}, daemon=True)

    def __enter__(self) -> EventLog:
        self.thread.start()
        # the receiver subscribes in its thread: send probes until one arrives, then it hears everything
        marker = uuid.uuid4().hex
        wait_until(lambda: self._send(marker) or self._seen(marker), 10, "the receiver listens", interval=0.2)
        return self

    def __exit__(self, *exc) -> None:
        self.receiver.should_stop = True
        self.thread.join(10)
        self.connection.release()

    def probe(self) -> None:
        """Send an event of our own and wait until it arrives: every event published before it
        has arrived too (one subscription gets messages in the order Redis took them)."""
        marker = uuid.uuid4().hex
        self._send(marker)
        wait_until(lambda: self._seen(marker), 10, "the probe event")

    def _send(self, marker: str) -> None:
        with self.app.events.default_dispatcher() as dispatcher:
            dispatcher.send("genapi-probe", marker=marker)

    def _seen(self, marker: str) -> bool:
        return any(e.get("marker") == marker for e in self.events)

    def task_events(self) -> list[dict]:
        return [e for e in self.events if e["type"].startswith("task-")]


def test_no_task_events_unless_asked(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.sample")
    gateway = fresh_stack.start_gateway(worker)
    assert "task events: OFF" in fresh_stack.log_of(worker)
    with EventLog(fresh_stack.redis_url) as log:
        with gateway.connect() as ws:
            for n in range(5):
                assert call(ws, {**ADD, "request_id": f"quiet-{n}"})["result"] == 42
        fresh_stack.stop(worker)  # whatever it would have sent is published by the time it exits
        log.probe()
        assert log.task_events() == []
        assert any(e["type"].startswith("worker-") for e in log.events)  # the receiver hears the worker at all

        # the same call with the setting on, worker and gateway: every step of the call is an event
        loud = fresh_stack.start_worker("tests.services.sample", GENAPI_TASK_EVENTS="1")
        assert "task events: ON" in fresh_stack.log_of(loud)
        loud_gateway = fresh_stack.start_gateway(loud, GENAPI_TASK_EVENTS="1")
        with loud_gateway.connect() as ws:
            assert call(ws, {**ADD, "request_id": "loud"})["result"] == 42

        def steps() -> dict[str, dict]:
            return {e["type"]: e for e in log.task_events()}

        wait_until(lambda: {"task-sent", "task-received", "task-started", "task-succeeded"} <= set(steps()), 10,
                   "the task events of the call")
        events = steps()
        assert len({e["uuid"] for e in events.values()}) == 1
        assert events["task-sent"]["name"] == events["task-received"]["name"] == "sample.add"
        assert events["task-sent"]["kwargs"] == events["task-received"]["kwargs"] == "{'a': 20, 'b': 22}"
        assert events["task-sent"]["hostname"].startswith("gateway")
        assert events["task-sent"]["queue"] == "genapi.sample"


@pytest.fixture
def event_channels(fresh_stack):
    """Every message published on the broker's event channels, as (channel, decoded envelope)."""
    pubsub = fresh_stack.redis.pubsub()
    db = fresh_stack.redis.connection_pool.connection_kwargs["db"]
    pubsub.psubscribe(event_channel(db, "*"))
    wait_until(lambda: pubsub.get_message(timeout=0.1) is not None, 5, "subscribed")

    def next_message() -> tuple[str, dict]:
        found = []
        wait_until(lambda: found.append(pubsub.get_message(timeout=0.2)) or found[-1] is not None, 10, "an event")
        return found[-1]["channel"].decode(), json.loads(found[-1]["data"])

    yield next_message
    pubsub.close()


def test_our_task_sent_event_is_the_one_celery_publishes(fresh_stack, event_channels):
    url = fresh_stack.redis_url
    app = create_celery_app(Settings(redis_url=url, broker_url=url))
    app.conf.task_send_sent_event = True
    app.send_task("sample.add", kwargs={"a": 1, "b": 2}, queue="genapi.nowhere", expires=5, ignore_result=True,
                  kwargsrepr="{'a': 1, 'b': 2}")
    celery_channel, celery = event_channels()
    RedisQueueDispatcher(url, task_events=True).send("sample.add", {"a": 1, "b": 2}, "genapi.nowhere", 5, None)
    our_channel, ours = event_channels()

    assert our_channel == celery_channel
    assert set(ours) == set(celery) and ours["headers"].keys() == celery["headers"].keys()
    assert {k: v for k, v in ours["properties"].items() if k != "delivery_tag"} == \
        {k: v for k, v in celery["properties"].items() if k != "delivery_tag"}
    ours_event, celery_event = (json.loads(b64decode(m["body"])) for m in (ours, celery))
    assert set(ours_event) == set(celery_event)
    same = ("name", "args", "kwargs", "retries", "eta", "queue", "exchange", "routing_key", "type", "parent_id")
    assert {k: ours_event[k] for k in same} == {k: celery_event[k] for k in same}


def test_send_task_dispatcher_sends_the_redacted_event_when_asked(fresh_stack, event_channels):
    url = fresh_stack.redis_url
    # the send_task path (any broker but Redis), here on Redis so the test can read the event
    dispatcher = for_broker("amqp://unused", lambda: create_celery_app(Settings(redis_url=url, broker_url=url)),
                            task_events=True)
    handle = dispatcher.send("acct.login", {"user": "ada", "password": "hunter2"}, "genapi.nowhere", 5, None,
                             sensitive=("password",))
    _channel, envelope = event_channels()
    event = json.loads(b64decode(envelope["body"]))
    assert (event["type"], event["uuid"]) == ("task-sent", handle.task_id)
    assert event["kwargs"] == "{'user': 'ada', 'password': '***'}"

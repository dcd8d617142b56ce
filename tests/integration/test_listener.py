"""The listener on a real Redis: runtime subscriptions that survive a reconnect."""

from __future__ import annotations

import threading
import time

import pytest

from gateway_app.listener import Listener
from gateway_app.processes import wait_until


@pytest.fixture
def listener(redis_db):
    received: dict[str, list[bytes]] = {}
    reconnects = threading.Event()

    def record(name: str):
        return lambda data: received.setdefault(name, []).append(data)

    listener = Listener(redis_db, {"fixed-ch": record("fixed")}, on_reconnect=reconnects.set)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    assert listener.connected.wait(5)
    listener.received, listener.record, listener.reconnects = received, record, reconnects
    try:
        yield listener
    finally:
        listener.stop()
        thread.join(5)


def delivered(redis_db, listener, channel: str, name: str, payload: bytes) -> bool:
    """Publish until the handler has it (a subscription takes effect within a poll)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        redis_db.publish(channel, payload)
        if payload in listener.received.get(name, []):
            return True
        time.sleep(0.05)
    return False


def test_a_channel_subscribed_at_runtime_is_delivered_and_unsubscribed_is_not(redis_db, listener):
    listener.subscribe("group-ch", listener.record("group"))
    assert delivered(redis_db, listener, "group-ch", "group", b"hello")
    listener.unsubscribe("group-ch")
    wait_until(lambda: redis_db.pubsub_numsub("group-ch")[0][1] == 0, 5, "unsubscribed in Redis")
    redis_db.publish("group-ch", b"after")
    assert delivered(redis_db, listener, "fixed-ch", "fixed", b"still here")
    assert b"after" not in listener.received["group"]


def test_runtime_subscriptions_survive_a_reconnect(redis_db, listener):
    listener.subscribe("group-ch", listener.record("group"))
    assert delivered(redis_db, listener, "group-ch", "group", b"before")
    killed = redis_db.client_kill_filter(_type="pubsub")
    assert killed >= 1
    assert listener.reconnects.wait(10)
    assert delivered(redis_db, listener, "group-ch", "group", b"after reconnect")
    assert delivered(redis_db, listener, "fixed-ch", "fixed", b"fixed too")

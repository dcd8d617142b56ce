"""workers.relay.publish and gateway_app.relay.Relay.on_message: one publish per gateway
process, frames handed to the right connections, pending members skipped."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import redis

from gateway_app.auth import Identity
from gateway_app.decoding import Request
from gateway_app.errors import Rejected
from gateway_app.relay import Relay
from workers.protocol import Keys
from workers.relay import publish, recipients, relay_frame
from workers.settings import Settings


class RecordingRedis:
    """Just enough of a redis client: a pipeline that records PUBLISH calls."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def pipeline(self, transaction=False):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def publish(self, channel, payload):
        self.published.append((channel, payload))

    def execute(self):
        return []

    def register_script(self, body):
        return lambda **kwargs: None


STATUSES = {b"a": b"active", b"b": b"muted", b"c": b"pending", b"d": b"active", b"e": b"active"}
ATTACHED = {b"a": b"gw1 c1", b"b": b"gw2 c2", b"c": b"gw1 c3", b"d": b"gw1 c4", b"e": b""}


def test_one_publish_per_gateway_to_active_and_muted_attached_members_only():
    client = RecordingRedis()
    frame = relay_frame("r1", "room", "a", "hi")
    publish(client, Keys(), STATUSES, ATTACHED, frame)
    by_channel = {channel: payload.split("\n", 1) for channel, payload in client.published}
    assert set(by_channel) == {"genapi:relay:gw:gw1", "genapi:relay:gw:gw2"}
    assert sorted(by_channel["genapi:relay:gw:gw1"][0].split(",")) == ["c1", "c4"]  # c3 is pending
    assert by_channel["genapi:relay:gw:gw2"][0] == "c2"  # muted members still receive
    assert json.loads(by_channel["genapi:relay:gw:gw1"][1]) == frame


def test_the_sender_served_locally_is_skipped():
    client = RecordingRedis()
    publish(client, Keys(), STATUSES, ATTACHED, relay_frame("r1", "room", "a", "hi"), skip="gw1 c1")
    [payload] = [p for channel, p in client.published if channel.endswith("gw1")]
    assert payload.split("\n", 1)[0] == "c4"


def test_recipients_count_active_and_muted_members_attached_or_not():
    assert recipients(STATUSES) == 4


def test_relay_frame_has_the_response_keys_and_a_utc_timestamp():
    frame = relay_frame(7, "room", "u1", {"x": 1})
    assert set(frame) == {"request_id", "result", "success", "error", "async", "has_more", "can_retry"}
    assert frame["request_id"] == 7 and frame["success"] is True
    assert frame["result"]["timestamp"].endswith("Z") and len(frame["result"]["timestamp"]) == 27


class StubConnection:
    def __init__(self, accept=True):
        self.texts: list[str] = []
        self.accept = accept

    def send_text(self, text, terminal=True):
        self.texts.append(text)
        return self.accept


def test_on_message_hands_the_frame_to_the_named_local_connections():
    relay = Relay(RecordingRedis(), Keys(), "gw1", Settings())
    one, two, other = StubConnection(), StubConnection(accept=False), StubConnection()
    relay.connections.update({"c1": one, "c2": two, "c9": other})
    relay.on_message(b'c1,c2,gone\n{"request_id":1}')
    assert one.texts == ['{"request_id":1}'] and two.texts == ['{"request_id":1}'] and other.texts == []


class DownRedis(RecordingRedis):
    """Redis gone: every script call fails."""

    def register_script(self, body):
        def script(**kwargs):
            raise redis.ConnectionError("Connection refused")
        return script


def test_redis_trouble_answers_service_temporarily_unavailable():
    relay = Relay(DownRedis(), Keys(), "gw1", Settings())
    conn = SimpleNamespace(id="c1", identity=Identity("alice"), relay_groups=set())
    request = Request(service="relay", request_type="join_group", request_id="r", args={"group_id": "g"})
    with pytest.raises(Rejected) as refused:
        relay.answer(conn, request)
    assert (refused.value.error, refused.value.can_retry) == ("Service temporarily unavailable", True)
    assert conn.relay_groups == set()  # nothing joined

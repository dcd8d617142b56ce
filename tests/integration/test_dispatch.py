"""Both dispatchers produce the task message Celery itself would, and workers run it."""

from __future__ import annotations

import json
from base64 import b64decode
from datetime import datetime

import pytest
import redis

from gateway_app.dispatch import CeleryDispatcher, RedisQueueDispatcher, task_message
from gateway_app.processes import wait_until
from workers.celery_app import create_celery_app
from workers.settings import Settings

ARGS = {"a": 1, "b": [2, "x"]}
META = {"reply": "genapi:reply:test", "ref": "7", "deadline": 123.0}
DYNAMIC_HEADERS = {"id", "root_id", "expires", "origin"}
DYNAMIC_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


@pytest.fixture
def broker(redis_server):
    url = f"redis://127.0.0.1:{redis_server}/14"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url, client
    client.flushdb()


def _celery_message(url: str, client: redis.Redis) -> dict:
    app = create_celery_app(Settings(redis_url=url, broker_url=url))
    app.send_task("svc.fn", kwargs=ARGS, queue="genapi.svc", expires=5, ignore_result=True,
                  headers={"genapi": META})
    return json.loads(client.rpop("genapi.svc"))


def test_direct_message_matches_what_celery_writes(broker):
    url, client = broker
    celery = _celery_message(url, client)
    ours = task_message("svc.fn", ARGS, "genapi.svc", 5, META, origin="gateway1@host")
    assert set(ours) == set(celery)
    assert {k: v for k, v in ours.items() if k not in ("headers", "properties", "body")} == \
        {k: v for k, v in celery.items() if k not in ("headers", "properties", "body")}
    assert json.loads(b64decode(ours["body"])) == json.loads(b64decode(celery["body"]))
    strip = lambda d, keys: {k: v for k, v in d.items() if k not in keys}  # noqa: E731
    assert strip(ours["headers"], DYNAMIC_HEADERS) == strip(celery["headers"], DYNAMIC_HEADERS)
    assert strip(ours["properties"], DYNAMIC_PROPERTIES) == strip(celery["properties"], DYNAMIC_PROPERTIES)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    drift = datetime.fromisoformat(ours["headers"]["expires"]) - datetime.fromisoformat(celery["headers"]["expires"])
    assert abs(drift.total_seconds()) < 2


def test_without_timeout_there_is_no_expiry():
    message = task_message("svc.fn", {}, "q", None, None, origin="o")
    assert message["headers"]["expires"] is None and "expiration" not in message["properties"]
    assert "genapi" not in message["headers"]


@pytest.mark.parametrize("make", [
    lambda url: RedisQueueDispatcher(url),
    lambda url: CeleryDispatcher(create_celery_app(Settings(redis_url=url, broker_url=url))),
], ids=["redis-direct", "celery-send_task"])
def test_worker_runs_the_message_and_replies(stack, sample_worker, make):
    dispatcher = make(stack.redis_url)
    pubsub = stack.redis.pubsub()
    pubsub.subscribe("genapi:reply:dispatch-test")
    wait_until(lambda: pubsub.get_message(timeout=0.1) is not None, 5, "subscribed")
    import time

    meta = {"reply": "genapi:reply:dispatch-test", "ref": "42", "deadline": time.time() + 10}
    dispatcher.send("sample.add", {"a": 40, "b": 2}, "genapi.sample", 10, meta)
    replies = []
    wait_until(lambda: replies.append(pubsub.get_message(timeout=0.2)) or replies[-1] is not None, 10, "reply")
    assert json.loads(replies[-1]["data"]) == {"ref": "42", "type": "result", "data": 42,
                                               "node": stack.node_of(sample_worker)}
    pubsub.close()


def test_argument_repr_is_bounded():
    message = task_message("svc.fn", {"text": "x" * 100_000}, "q", 1, None, origin="o")
    assert len(message["headers"]["kwargsrepr"]) == 1024

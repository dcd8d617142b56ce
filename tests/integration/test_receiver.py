"""The receiver on a real Redis, in-process: every outcome of a push, and what it stores."""

from __future__ import annotations

import json
import time

import pytest

from gateway_app.failed_configs import FailedConfigs
from gateway_app.receiver import Receiver
from workers import pushconfig
from workers.allowlist import Allowlist
from workers.protocol import Keys

KEYS = Keys("receiver-test:")  # pub/sub channels are shared by every database: our own
TOKEN = "receiver-token"


def make(redis_db, token=None, allowlist=None) -> Receiver:
    return Receiver(redis_db, KEYS, FailedConfigs(redis_db, KEYS), token, allowlist)


def push(*configs: dict, version="v1", service="svc", token=None, **extra) -> dict:
    data = {"service": service, "nodes": ["n1@host"], "config_version": version, "fun_configs": list(configs),
            **extra}
    if token:
        data["signature"] = pushconfig.signature(data, token)
    return data


def fn(request_type: str, **fields) -> dict:
    return {"service": "svc", "request_type": request_type, **fields}


def stored(redis_db) -> dict:
    return {k.decode(): json.loads(v) for k, v in redis_db.hgetall(KEYS.functions).items()}


def test_a_valid_push_is_stored_with_its_record_and_announced(redis_db):
    pubsub = redis_db.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(KEYS.events)
    outcome = make(redis_db).accept(push(fn("a"), fn("b", version="2.0.0")))
    assert outcome == {"status": "accepted", "count": 2, "rejected": [], "config_version": "v1"}
    assert set(stored(redis_db)) == {"svc|a|", "svc|b|2.0.0"}
    record = json.loads(redis_db.hget(KEYS.pushed, "svc"))
    assert (record["config_version"], record["nodes"], record["functions"], record["source"]) == (
        "v1", ["n1@host"], ["svc|a|", "svc|b|2.0.0"], "push")
    deadline = time.monotonic() + 5
    message = None
    while message is None and time.monotonic() < deadline:  # the subscribe confirmation comes first
        message = pubsub.get_message(timeout=1)
    assert json.loads(message["data"]) == {"event": "functions", "subject": "svc"}
    pubsub.close()


def test_the_same_config_version_is_skipped_unless_forced_or_a_function_went_missing(redis_db):
    receiver = make(redis_db)
    receiver.accept(push(fn("a"), fn("b")))
    assert receiver.accept(push(fn("a"), fn("c")))["status"] == "skipped"
    assert "svc|c|" not in stored(redis_db)  # contents are not compared: the version decides
    assert receiver.accept(push(fn("a"), fn("c"), force=True))["status"] == "accepted"
    assert receiver.accept(push(fn("a")), force=True)["status"] == "accepted"
    redis_db.hdel(KEYS.functions, "svc|a|")  # an operator deleted it
    assert receiver.accept(push(fn("a")))["status"] == "accepted"
    assert "svc|a|" in stored(redis_db)


def test_invalid_fun_configs_are_dropped_and_recorded_the_rest_registered(redis_db):
    receiver = make(redis_db)
    outcome = receiver.accept(push(fn("ok"), fn("bad", timeout=5), fn("evil", permission_callback="os:system")))
    assert outcome["status"] == "accepted" and outcome["count"] == 1
    assert [(r["function"], r["reason"][:40]) for r in outcome["rejected"]] == [
        ("svc.bad", "invalid function config svc.bad: timeout"),
        ("svc.evil", "callable os:system is in a module that c")]
    assert list(stored(redis_db)) == ["svc|ok|"]
    entries = receiver.failed.list()
    assert [(e["request_type"], e["source"], e["node"]) for e in entries] == [
        ("evil", "push", "n1@host"), ("bad", "push", "n1@host")]


def test_when_nothing_is_valid_nothing_is_stored(redis_db):
    outcome = make(redis_db).accept(push(fn("bad", response_type="later")))
    assert outcome["status"] == "error" and outcome["error"] == "all_invalid"
    assert stored(redis_db) == {} and redis_db.hget(KEYS.pushed, "svc") is None


@pytest.mark.parametrize(("data", "reasons"), [
    ({}, ["service must not be nil", "nodes must be a non-empty list of atoms or strings",
          "config_version must be a non-empty string", "fun_configs must be a non-empty list of FunConfig structs"]),
    (push(fn("a"), version=""), ["config_version must be a non-empty string"]),
    (push({"service": "other", "request_type": "a"}),
     ["all fun_configs must have the same service name as the push config"]),
    (push(fn("a")) | {"nodes": []}, ["nodes must be a non-empty list of atoms or strings"]),
])
def test_structural_problems_refuse_the_whole_push(redis_db, data, reasons):
    receiver = make(redis_db)
    assert receiver.accept(data) == {"status": "error", "error": "validation_failed", "reasons": reasons}
    assert receiver.failed.list()[0]["reason"] == reasons and stored(redis_db) == {}


def test_with_a_push_token_only_correct_signatures_pass(redis_db):
    receiver = make(redis_db, token=TOKEN)
    assert receiver.accept(push(fn("a")))["reasons"] == ["missing push signature"]
    assert receiver.accept(push(fn("a"), token="other"))["reasons"] == [
        "invalid push signature (GENAPI_PUSH_TOKEN differs)"]
    tampered = push(fn("a"), token=TOKEN)
    tampered["fun_configs"][0]["request_type"] = "b"
    assert receiver.accept(tampered)["error"] == "invalid_push_token"
    assert stored(redis_db) == {} and receiver.failed.count() == 3
    assert receiver.accept(push(fn("a"), token=TOKEN))["status"] == "accepted"


def test_version_0_0_0_is_stored_unversioned_and_the_service_name_is_the_pushs(redis_db):
    make(redis_db).accept(push({"request_type": "a", "version": "0.0.0"}))
    assert stored(redis_db)["svc|a|"]["version"] is None and stored(redis_db)["svc|a|"]["service"] == "svc"


def test_the_allowlist_applies(redis_db):
    receiver = make(redis_db, allowlist=Allowlist(functions=frozenset({"svc.a"})))
    outcome = receiver.accept(push(fn("a"), fn("b")))
    assert outcome["count"] == 1 and outcome["rejected"][0]["reason"] == (
        "function svc.b is not in GENAPI_REGISTRATION_ALLOWLIST")


def test_queued_pushes_are_handled_once_and_answered(redis_db):
    receiver = make(redis_db)
    first = pushconfig.build("svc", "n1@host", [], "v1", None, fun_configs=[fn("a")])
    redis_db.lpush(KEYS.push_inbox, json.dumps(first), "not json")
    assert receiver.drain() == 2 and receiver.drain() == 0
    assert json.loads(redis_db.get(KEYS.push_result(first["push_id"])))["status"] == "accepted"
    assert redis_db.ttl(KEYS.push_result(first["push_id"])) > 0
    assert receiver.failed.list()[0]["reason"] == ["invalid push config data"]

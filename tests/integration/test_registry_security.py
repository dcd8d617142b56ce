"""Push security: signed pushes, the hard denylist, the registration allowlist; every
refusal is listed in the failed configs and nothing refused is ever served."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway_app.processes import wait_until
from workers import pushconfig

from .conftest import ROOT, call, request

TOKEN = "push-token-for-tests"
HELLO = request("hello", {"name": "ada"}, service="late")


def failed(stack, **filters: str) -> list[dict]:
    args = [arg for key, value in filters.items() for arg in (f"--{key}", value)]
    return stack.cli_json("admin", "failed-configs", *args)


def test_a_push_signed_with_the_wrong_token_is_refused_and_listed(fresh_stack):
    gateway = fresh_stack.start_gateway(GENAPI_PUSH_TOKEN=TOKEN)
    wrong = fresh_stack.start_worker("tests.services.late", GENAPI_PUSH_TOKEN="not-the-token")
    wait_until(lambda: failed(fresh_stack, service="late"), 10, "the refusal is recorded")
    entry, = failed(fresh_stack, service="late")
    assert entry["source"] == "push" and entry["node"] == fresh_stack.node_of(wrong)
    assert entry["reason"] == ["invalid push signature (GENAPI_PUSH_TOKEN differs)"]
    assert set(entry["config"]["functions"]) == {"hello", "wait_forever", "slow_hello"}
    assert entry["expires_at_ms"] - entry["inserted_at_ms"] == 24 * 3600 * 1000
    # what the admin API lists is what the CLI prints
    assert gateway.admin("GET", "failed-configs?service=late")[1] == failed(fresh_stack, service="late")
    # never served, although the worker is alive and claims the tasks
    assert gateway.sees_node(fresh_stack.node_of(wrong))
    with gateway.connect() as ws:
        assert call(ws, HELLO)["error"] == "unsupported function: hello version latest"
    assert fresh_stack.cli_json("admin", "list") == []
    # the worker's log says why, so the service author finds out
    wait_until(lambda: "push of late refused by the gateway: invalid push signature" in fresh_stack.log_of(wrong),
               10, "the worker logs the refusal")

    unsigned = fresh_stack.start_worker("tests.services.versioned")  # no token at all
    wait_until(lambda: failed(fresh_stack, service="versioned"), 10, "the unsigned push is recorded")
    assert failed(fresh_stack, service="versioned")[0]["reason"] == ["missing push signature"]
    fresh_stack.stop(unsigned)

    right = fresh_stack.start_worker("tests.services.late", GENAPI_PUSH_TOKEN=TOKEN)
    wait_until(lambda: fresh_stack.sees_worker(gateway, fresh_stack.node_of(right)), 10, "signed push accepted")
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"


def test_without_a_push_token_the_gateway_warns_once_and_accepts_pushes(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.late")
    gateway = fresh_stack.start_gateway(worker)
    assert fresh_stack.log_of(gateway.process).count("GENAPI_PUSH_TOKEN is not set") == 1
    with gateway.connect() as ws:
        assert call(ws, HELLO)["result"] == "hello ada"


def test_a_worker_refuses_to_start_with_a_callable_that_can_never_be_registered(fresh_stack):
    done = fresh_stack.cli("worker", "tests.services.blocked")
    assert done.returncode != 0
    assert "blocked.run: callable subprocess:run is in a module that can never be registered" in done.stderr
    assert "Traceback" not in done.stderr


def _crafted(service: str, fun_configs: list[dict]) -> str:
    """A PushConfig written by hand, as a misbehaving pusher could."""
    return json.dumps({"service": service, "nodes": ["intruder@elsewhere"], "config_version": "v1",
                       "fun_configs": fun_configs})


def _signed(service: str, fun_configs: list[dict], token: str, **extra) -> dict:
    data = {"service": service, "nodes": ["intruder@elsewhere"], "config_version": "v1", "fun_configs": fun_configs,
            **extra}
    return {**data, "signature": pushconfig.signature(data, token)}


def test_blocked_callables_and_services_are_refused_even_when_pushed_by_hand(fresh_stack):
    gateway = fresh_stack.start_gateway()
    blocked = {"service": "crafted", "request_type": "run", "before_execute": {"callable": "os:system", "args": ["id"]}}
    alias = {"service": "crafted", "request_type": "load", "permission_callback": "_pickle:loads"}
    fine = {"service": "crafted", "request_type": "fine"}
    fresh_stack.redis.lpush("genapi:push:inbox", _crafted("crafted", [blocked, alias, fine]))
    celery = {"service": "celery", "request_type": "chord_unlock"}
    fresh_stack.redis.lpush("genapi:push:inbox", _crafted("celery", [celery]))
    wait_until(lambda: len(failed(fresh_stack)) == 3, 10, "three refusals recorded")
    reasons = {(e["service"], e["request_type"]): e["reason"][0] for e in failed(fresh_stack)}
    assert reasons[("crafted", "run")] == "callable os:system is in a module that can never be registered"
    assert reasons[("crafted", "load")] == "callable _pickle:loads is in a module that can never be registered"
    assert "reserved" in reasons[("celery", "chord_unlock")]
    # partial success: the valid config of the same push is registered
    assert [(f["service"], f["request_type"]) for f in fresh_stack.cli_json("admin", "list")] == [("crafted", "fine")]
    with gateway.connect() as ws:
        assert call(ws, request("run", service="crafted"))["error"] == "unsupported function: run version latest"


def test_the_registration_allowlist_limits_services_and_callables(fresh_stack):
    allowlist = json.dumps({"services": ["guarded"], "callables": ["tests.services.elsewhere"]})
    gateway = fresh_stack.start_gateway(GENAPI_REGISTRATION_ALLOWLIST=allowlist)
    guarded = fresh_stack.start_worker("tests.services.guarded")
    late = fresh_stack.start_worker("tests.services.late")
    wait_until(lambda: {e["service"] for e in failed(fresh_stack)} == {"guarded", "late"}, 10, "refusals recorded")
    hooked, = failed(fresh_stack, service="guarded")
    assert (hooked["request_type"], hooked["reason"]) == (
        "hooked", ["callable tests.services.hooks:audit is not in GENAPI_REGISTRATION_ALLOWLIST"])
    assert {e["reason"][0] for e in failed(fresh_stack, service="late")} == {
        f"function late.{name} is not in GENAPI_REGISTRATION_ALLOWLIST" for name in ("hello", "wait_forever",
                                                                                      "slow_hello")}
    assert [f["request_type"] for f in fresh_stack.cli_json("admin", "list")] == ["plain"]
    with gateway.connect() as ws:
        assert call(ws, request("plain", service="guarded"))["result"] == "plain"
        assert call(ws, request("hooked", service="guarded"))["error"] == "unsupported function: hooked version latest"
        assert call(ws, HELLO)["error"] == "unsupported function: hello version latest"
    assert fresh_stack.node_of(guarded) and fresh_stack.node_of(late)


def test_pushing_over_http_needs_the_push_config_action_and_the_push_token(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.late", GENAPI_PUSH_TOKEN=TOKEN)
    gateway = fresh_stack.start_gateway(worker, GENAPI_PUSH_TOKEN=TOKEN, GENAPI_ADMIN_ACTIONS="push_config")
    late_hello = {"service": "late", "request_type": "hello", "version": "9.0.0",
                  "arg_types": {"name": "string"}}
    status, body = gateway.admin("POST", "push", _signed("late", [late_hello], "wrong"))
    assert (status, body["error"]) == (403, "invalid_push_token")
    status, body = gateway.admin("POST", "push", {"service": "late", "nodes": ["x"]})
    assert status == 400 and body["error"] == "validation_failed"
    assert body["reasons"] == ["config_version must be a non-empty string",
                               "fun_configs must be a non-empty list of FunConfig structs"]
    status, body = gateway.admin("POST", "push", _signed("late", [late_hello], TOKEN))
    assert (status, body["status"], body["count"]) == (200, "accepted", 1)
    # the same config_version again: skipped, unless forced
    assert gateway.admin("POST", "push", _signed("late", [late_hello], TOKEN))[1]["status"] == "skipped"
    forced = _signed("late", [late_hello], TOKEN, force=True)
    assert gateway.admin("POST", "push", forced)[1]["status"] == "accepted"
    # the signature covers every field: a forced flag added afterwards is tampering
    tampered = {**_signed("late", [late_hello], TOKEN), "force": True}
    assert gateway.admin("POST", "push", tampered)[1]["error"] == "invalid_push_token"
    versions = [f["version"] for f in fresh_stack.cli_json("admin", "list") if f["request_type"] == "hello"]
    assert versions == [None, "9.0.0"]


def test_the_gateway_refuses_a_public_address_with_the_development_key(fresh_stack):
    env = fresh_stack.env()
    del env["GENAPI_SECRET_KEY"]
    done = subprocess.run([sys.executable, "-m", "gateway_app", "gateway", "--host", "0.0.0.0", "--port", "1"],
                          env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert done.stderr.strip() == ("genapi gateway: refusing to listen on 0.0.0.0 with the public development key: "
                                   "set GENAPI_SECRET_KEY (or listen on 127.0.0.1)")
    done = subprocess.run([sys.executable, "-m", "gateway_app", "token", "alice"], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "public development key" in done.stderr

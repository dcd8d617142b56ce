"""``genapi health``, ``genapi stats`` and ``genapi call-flow`` against a real Redis, a real
worker of ``tests.services.policies`` and a gateway with rate limits and a gateway hook."""

from __future__ import annotations

import json
import time

import pytest

from gateway_app.processes import free_port
from workers.signals import EVENTS

from .conftest import Stack, _databases, call

GLOBAL_LIMIT = {"key": "user_id", "max_requests": 100, "window_ms": 60000}
CB_FALSE_LIMIT = {"service": "policies", "request_type": "cb_false", "key": "user_id", "max_requests": 5,
                  "window_ms": 1000}
GATEWAY_HOOK = "tests.services.policies:gateway_before"
#: the pipeline's order (gateway_app.pipeline.build_steps), then the worker and the reply side
PHASES = ["authenticate", "parse", "decode", "builtins", "config_lookup", "permission", "rate_limit",
          "argument_validation", "gateway_hooks_before", "breaker", "node_selection", "execution"]
ENDING = ["gateway_hooks_after", "response"]


@pytest.fixture(scope="module")
def diag(redis_server, tmp_path_factory):
    """A worker and a gateway (its rate limits published to Redis for commands run elsewhere)."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("diagnostics"))
    try:
        worker = stack.start_worker("tests.services.policies")
        stack.gateway = stack.start_gateway(worker, GENAPI_RATE_LIMITS=json.dumps(
            {"global_limits": [GLOBAL_LIMIT], "api_limits": [CB_FALSE_LIMIT]}), GENAPI_BEFORE_EXECUTE=GATEWAY_HOOK)
        stack.node = stack.node_of(worker)
        yield stack
    finally:
        stack.stop_all()


def registered(stack: Stack) -> int:
    return len(stack.cli_json("admin", "list"))


# ------------------------------------------------------------------ health


def test_health_checks_every_part_and_exits_0_when_all_are_ok(diag):
    report = diag.cli_json("health", "--url", f"http://127.0.0.1:{diag.gateway.port}")
    assert report["status"] == "ok"
    checks = report["checks"]
    assert {name: check["status"] for name, check in checks.items()} == {
        "redis": "ok", "broker": "ok", "workers": "ok", "functions": "ok", "gateway": "ok"}
    assert checks["broker"]["same_as_redis"] is True
    assert checks["workers"]["live"] == 1 and checks["workers"]["nodes"] == {
        diag.node: {"services": ["policies"], "draining": False}}
    assert checks["functions"]["count"] == registered(diag) and checks["functions"]["unserved"] == []
    # the CLI has the admin token, so the gateway's checks come along
    assert checks["gateway"]["http_status"] == 200
    assert checks["gateway"]["checks"] == {"redis": "ok", "broker": "ok", "reply_subscription": "ok",
                                           "accepting_calls": "ok"}

    text = diag.cli("health")
    assert text.returncode == 0 and text.stdout.splitlines()[0] == "health: ok"


def test_health_exits_1_within_seconds_when_redis_is_unreachable(diag):
    started = time.monotonic()
    done = diag.cli("health", "--json", GENAPI_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert time.monotonic() - started < 5
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "error"
    assert report["checks"]["redis"]["status"] == "error" and "refused" in report["checks"]["redis"]["error"]
    assert report["checks"]["workers"] == {"status": "error", "error": "not checked: Redis is unavailable"}

    text = diag.cli("health", GENAPI_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert text.returncode == 1 and text.stdout.splitlines()[0] == "health: error"


def test_health_exits_1_when_the_gateway_does_not_answer(diag):
    done = diag.cli("health", "--json", "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["status"] == "error" and report["checks"]["gateway"]["status"] == "error"
    assert report["checks"]["redis"]["status"] == "ok"


def test_health_is_degraded_without_workers_or_functions(fresh_stack):
    done = fresh_stack.cli("health", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["status"] == "degraded"
    assert report["checks"]["workers"] == {"status": "degraded", "live": 0, "draining": 0, "nodes": {}}
    assert report["checks"]["functions"] == {"status": "degraded", "count": 0, "services": 0, "unserved": []}


# ------------------------------------------------------------------ stats


def test_stats_counts_what_redis_holds(diag):
    with diag.gateway.connect() as ws:
        created = call(ws, {"service": "relay", "request_type": "create_group", "request_id": "g",
                            "args": {"group_id": "diag-stats", "group_type": "public"}})
        assert created["success"], created
        stats = diag.cli_json("stats")
    assert stats["registry"]["functions"] == registered(diag)
    policies = stats["registry"]["services"]["policies"]
    assert policies["functions"] == registered(diag) and policies["disabled"] == 0
    assert policies["versions"]["info_seen"] == ["1.2.3"] and policies["versions"]["open"] == [""]
    node = stats["nodes"][diag.node]
    assert node["services"] == ["policies"] and node["draining"] is False
    assert 0 <= node["heartbeat_age_ms"] <= 6000 and 0 < node["expires_in_ms"] <= 6000
    assert stats["pushed_services"]["policies"]["nodes"] == [diag.node]
    assert stats["failed_configs"] == 0
    assert stats["rate_limits"] == {"enabled": True, "fail_open": True, "source": "settings", "global_limits": 1,
                                    "api_limits": 1}
    assert stats["breakers"] == {"enabled": True, "with_state": 0, "open": 0, "half_open": 0, "closed": 0}
    assert stats["queues"] == {"policies": 0}
    assert stats["relay"] == {"groups": 1}
    assert stats["gateways"] == {"live": 1, "capped": False}
    assert stats["redis"]["used_memory"] > 0 and stats["redis"]["connected_clients"] >= 1
    assert stats["telemetry_events"] == len(EVENTS)

    text = diag.cli("stats")
    assert text.returncode == 0 and f"telemetry events: {len(EVENTS)}" in text.stdout


# ------------------------------------------------------------------ call-flow


def test_call_flow_shows_the_config_nodes_and_policies_a_call_meets(diag):
    flow = diag.cli_json("call-flow", "policies", "cb_false", GENAPI_BEFORE_EXECUTE=GATEWAY_HOOK)
    assert (flow["service"], flow["request_type"], flow["version"], flow["task"]) == (
        "policies", "cb_false", None, "policies.cb_false")
    assert flow["config"]["permission_callback"] == "tests.services.policies:deny"
    assert flow["nodes"] == [{"node_id": diag.node, "live": True, "draining": False, "queue": f"{diag.node}.dq2",
                              "breaker": "closed"}]
    assert (flow["response_type"], flow["choose_node_mode"], flow["timeout"]) == ("sync", "any", 5000)
    assert flow["rate_limit"] == {"enabled": True, "fail_open": True, "source": "settings",
                                  "global": [GLOBAL_LIMIT], "api": [CB_FALSE_LIMIT]}
    assert flow["permission"]["strategy"] == "callback" and flow["permission"]["checked_on"] == "worker"
    assert flow["retry"]["configured"] is True and (flow["retry"]["mode"], flow["retry"]["attempts"]) == (
        "all_nodes", 2)
    assert flow["hooks"]["before_execute"] == {"configured": False, "description": "no before hook"}
    assert flow["hooks"]["gateway"]["before_execute"] == [GATEWAY_HOOK]
    assert flow["breakers"]["enabled"] is True and flow["breakers"]["service"] == {"state": "closed", "failures": 0}
    assert [step["phase"] for step in flow["steps"]] == PHASES + ["retry"] + ENDING
    execution = next(step for step in flow["steps"] if step["phase"] == "execution")
    assert [inner["phase"] for inner in execution["worker"]] == ["hooks_before", "permission_callback", "function",
                                                                  "hooks_after"]
    rate_step = next(step for step in flow["steps"] if step["phase"] == "rate_limit")
    assert "policies.cb_false user_id 5 per 1000 ms" in rate_step["desc"]

    text = diag.cli("call-flow", "policies", "cb_false")
    assert text.returncode == 0 and "steps:" in text.stdout and "permission_callback" in text.stdout


@pytest.mark.parametrize(("request_type", "expected"), [
    ("open", {"strategy": "none"}),
    ("members", {"strategy": "authenticated"}),
    ("owned", {"strategy": "arg_based", "field": "user_id"}),
    ("admins", {"strategy": "role_based", "roles": ["admin"]}),
])
def test_call_flow_names_the_permission_strategy(diag, request_type, expected):
    flow = diag.cli_json("call-flow", "policies", request_type)
    assert {key: flow["permission"][key] for key in expected} == expected
    # no retry configured: no retry phase, and this function has no limit of its own
    assert [step["phase"] for step in flow["steps"]] == PHASES + ENDING
    assert flow["retry"] == {"configured": False, "description": "No retry"} and flow["rate_limit"]["api"] == []


def test_call_flow_hooks_of_the_function(diag):
    flow = diag.cli_json("call-flow", "policies", "offset")
    assert flow["hooks"]["before_execute"]["configured"] is True
    assert flow["hooks"]["before_execute"]["callable"] == "tests.services.policies:add_offset"
    assert flow["hooks"]["before_execute"]["extra_args"] == [100, "extra"]
    assert flow["hooks"]["after_execute"]["configured"] is False


def test_call_flow_resolves_versions_as_a_call_does(diag):
    for args in ((), ("--version", "0.0.0"), ("--version", "1.2.3")):
        assert diag.cli_json("call-flow", "policies", "info_seen", *args)["version"] == "1.2.3"

    unknown = diag.cli("call-flow", "policies", "info_seen", "--version", "9.9.9", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"] == "unsupported function: info_seen version 9.9.9"

    assert diag.cli("admin", "disable", "policies", "info_seen", "--version", "1.2.3").returncode == 0
    try:
        disabled = diag.cli("call-flow", "policies", "info_seen", "--version", "1.2.3", "--json")
        assert disabled.returncode == 1
        assert json.loads(disabled.stdout)["error"] == "disabled function: info_seen version 1.2.3"
        latest = diag.cli("call-flow", "policies", "info_seen", "--json")
        assert latest.returncode == 1
        assert json.loads(latest.stdout)["error"] == "unsupported function: info_seen version latest"
    finally:
        assert diag.cli("admin", "enable", "policies", "info_seen", "--version", "1.2.3").returncode == 0


def test_call_flow_of_an_unknown_function_exits_1_with_a_readable_message(diag):
    done = diag.cli("call-flow", "policies", "nope", "--json")
    assert done.returncode == 1
    flow = json.loads(done.stdout)
    assert flow == {"service": "policies", "request_type": "nope", "version": None, "config": None,
                    "error": "unsupported function: nope version latest", "known_versions": [],
                    "steps": [{"phase": "config_lookup",
                               "desc": "unsupported function: nope version latest (registered versions: none)"}]}
    text = diag.cli("call-flow", "policies", "nope")
    assert text.returncode == 1 and text.stdout == ""
    assert text.stderr.strip() == ("genapi call-flow: unsupported function: nope version latest "
                                   "(service policies; registered versions: none)")

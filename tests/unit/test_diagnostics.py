"""gateway_app.diagnostics without Redis: aggregation, the process check, the probes' time
bounds, the call-flow descriptions and steps, the CLI wiring and ``/healthz``."""

from __future__ import annotations

import os
import socket
import time

import pytest
from flask import Flask

from gateway_app import Gateway, callflow, diagnostics, diagnostics_cli
from gateway_app.cli import build_parser
from gateway_app.diagnostics import DEGRADED, ERROR, OK
from gateway_app.processes import free_port
from workers.funconfig import load_funconfig
from workers.settings import Settings

TOKEN = "diagnostics-unit-admin-token"


def cfg(**fields):
    return load_funconfig({"service": "svc", "request_type": "fn", **fields})


# ------------------------------------------------------------------ statuses


@pytest.mark.parametrize(("statuses", "expected"), [
    ([], OK), ([OK, OK], OK), ([OK, DEGRADED], DEGRADED), ([DEGRADED, ERROR, OK], ERROR), ([ERROR], ERROR)])
def test_any_error_wins_then_any_degraded(statuses, expected):
    assert diagnostics.aggregate(statuses) == expected


@pytest.mark.parametrize(("open_fds", "limit", "expected"), [
    (None, 1024, OK), (10, None, OK), (899, 1000, OK), (900, 1000, DEGRADED), (1000, 1000, DEGRADED)])
def test_file_descriptors_near_the_limit_are_degraded(open_fds, limit, expected):
    assert diagnostics.fd_status(open_fds, limit) == expected


def test_the_process_check_reads_this_process():
    check = diagnostics.process_check(connections=7)
    assert check["status"] == OK and check["pid"] == os.getpid() and check["connections"] == 7
    assert check["rss_bytes"] > 1_000_000 and check["threads"] >= 1 and check["open_fds"] > 0
    assert 0 <= check["uptime_s"] < 24 * 3600


def test_liveness_aggregates_the_process_check():
    report = diagnostics.liveness("gw-1", 0)
    assert report["gateway_id"] == "gw-1" and report["status"] == report["checks"]["process"]["status"] == OK
    assert abs(report["checked_at_ms"] - time.time() * 1000) < 5000


# ------------------------------------------------------------------ probes


def test_a_probe_of_a_closed_port_answers_at_once():
    started = time.monotonic()
    assert diagnostics.Probes().redis(f"redis://127.0.0.1:{free_port()}/0").startswith("unavailable: ")
    assert time.monotonic() - started < 1


def test_a_probe_of_a_server_that_never_answers_gives_up_after_its_timeout():
    """A listening socket nobody reads: connections succeed, PING gets no reply (a frozen Redis)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        status = diagnostics.Probes(timeout=0.3).redis(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        elapsed = time.monotonic() - started
    assert status.startswith("unavailable: ") and "imeout" in status
    assert 0.25 < elapsed < 2


def test_a_non_redis_broker_is_checked_within_the_timeout():
    started = time.monotonic()
    status = diagnostics.Probes(timeout=0.5).broker(f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    assert status.startswith("unavailable: ") and time.monotonic() - started < 3


# ------------------------------------------------------------------ call-flow descriptions


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, {"strategy": "none"}),
    ({"check_permission": "any_authenticated"}, {"strategy": "authenticated", "checked_on": "gateway"}),
    ({"arg_types": {"owner": "string"}, "check_permission": {"arg": "owner"}},
     {"strategy": "arg_based", "field": "owner"}),
    ({"check_permission": {"role": ["ops", "admin"]}}, {"strategy": "role_based", "roles": ["ops", "admin"]}),
    ({"check_permission": {"role": ["admin"]}, "permission_callback": "m:allow"},
     {"strategy": "callback", "callback": "m:allow", "checked_on": "worker"}),
])
def test_permission_strategies(fields, expected):
    found = callflow.permission(cfg(**fields))
    assert {key: found[key] for key in expected} == expected and found["description"]


def test_an_empty_role_list_lets_nobody_in():
    assert callflow.permission(cfg(check_permission={"role": []}))["description"] == "nobody (an empty role list)"


@pytest.mark.parametrize(("retry", "expected"), [
    (None, {"configured": False}), (0.5, {"configured": False}),  # 0.5 truncates to no retry, as in retry.py
    (2, {"configured": True, "mode": "all_nodes", "attempts": 2}),
    ({"same_node": 1}, {"configured": True, "mode": "same_node", "attempts": 1}),
])
def test_retry_policies(retry, expected):
    found = callflow.retry_policy(cfg(retry=retry))
    assert {key: found[key] for key in expected} == expected


def test_a_none_call_is_retried_by_its_worker():
    assert "retried by the worker itself" in callflow.retry_policy(cfg(retry=1, response_type="none"))["description"]


def test_hooks_with_extra_arguments():
    assert callflow.hook(None, "before", 500) == {"configured": False, "description": "no before hook"}
    found = callflow.hook({"callable": "m:f", "args": [1, "x"]}, "after", 500)
    assert (found["callable"], found["args"], found["extra_args"]) == ("m:f", 4, [1, "x"])
    assert "within 500 ms" in found["description"]


@pytest.mark.parametrize(("mode", "words"), [
    ("any", "shared queue"), ("round_robin", "in turn"), ({"hash": "room"}, "argument 'room'"),
    ({"sticky": "user_id"}, "remembered"), ("pkg.mod:pick", "selector pkg.mod:pick")])
def test_node_selection_modes(mode, words):
    assert words in callflow.node_mode(mode)


def details(config, limits_enabled=True, nodes=(), gateway_after=()):
    """The parts of a call flow :func:`callflow.steps` describes."""
    return {
        "resolution": "the latest enabled version",
        "rate_limit": {"enabled": limits_enabled, "fail_open": True, "global": [], "api": []},
        "breakers": {"enabled": True, "service": {"state": "closed"}},
        "hooks": {"before_execute": callflow.hook(config.before_execute, "before", config.hook_timeout),
                  "after_execute": callflow.hook(config.after_execute, "after", config.hook_timeout),
                  "gateway": {"before_execute": [], "after_execute": list(gateway_after)}},
        "nodes": list(nodes), "permission": callflow.permission(config), "retry": callflow.retry_policy(config),
    }


def phases(config, **kwargs):
    return [step["phase"] for step in callflow.steps(config, details(config, **kwargs), 1000)]


def step(config, phase, **kwargs):
    return next(s for s in callflow.steps(config, details(config, **kwargs), 1000) if s["phase"] == phase)


def test_steps_follow_the_pipeline_order_and_retry_only_when_configured():
    plain = ["authenticate", "parse", "decode", "builtins", "config_lookup", "permission", "rate_limit",
             "argument_validation", "gateway_hooks_before", "breaker", "node_selection", "execution",
             "gateway_hooks_after", "response"]
    assert phases(cfg()) == plain
    assert phases(cfg(retry=1)) == plain[:12] + ["retry"] + plain[12:]


def test_the_worker_part_names_the_permission_callback_only_when_there_is_one():
    assert [s["phase"] for s in step(cfg(), "execution")["worker"]] == ["hooks_before", "function", "hooks_after"]
    assert [s["phase"] for s in step(cfg(permission_callback="m:f"), "execution")["worker"]] == [
        "hooks_before", "permission_callback", "function", "hooks_after"]
    assert "on the worker" in step(cfg(permission_callback="m:f"), "permission")["desc"]


def test_step_descriptions_follow_the_config():
    assert step(cfg(), "rate_limit", limits_enabled=False)["desc"] == "rate limits disabled"
    assert step(cfg(), "rate_limit")["desc"] == "no limit applies"
    assert step(cfg(), "argument_validation")["desc"].startswith("no arguments declared")
    assert "no live worker" in step(cfg(), "node_selection")["desc"]
    live = [{"node_id": "w1", "live": True, "draining": False}, {"node_id": "w2", "live": True, "draining": True}]
    assert "1 live worker(s)" in step(cfg(), "node_selection", nodes=live)["desc"]
    assert step(cfg(response_type="stream"), "gateway_hooks_after", gateway_after=["m:a"])["desc"] == \
        "not applied to stream calls"
    assert step(cfg(), "gateway_hooks_after", gateway_after=["m:a"])["desc"] == "m:a"
    assert step(cfg(timeout="infinity"), "execution")["desc"] == "on a worker, no timeout"


# ------------------------------------------------------------------ wiring


def test_the_commands_run_through_the_admin_runner():
    health = build_parser().parse_args(["health", "--json", "--url", "http://gw:8000"])
    assert (health.admin_func, health.needs_settings, health.json, health.url) == (
        diagnostics_cli.cmd_health, True, True, "http://gw:8000")
    assert build_parser().parse_args(["stats"]).admin_func is diagnostics_cli.cmd_stats
    flow = build_parser().parse_args(["call-flow", "svc", "fn", "--version", "1.0.0"])
    assert (flow.admin_func, flow.service, flow.request_type, flow.version, flow.json) == (
        diagnostics_cli.cmd_call_flow, "svc", "fn", "1.0.0", False)


@pytest.fixture
def unreachable():
    """A gateway whose Redis does not exist: liveness must not care."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = Flask("diagnostics-unit")
    app.config["GENAPI_SETTINGS"] = Settings(redis_url=url, broker_url=url, admin_token=TOKEN, metrics="off")
    gateway = Gateway(app)
    yield gateway, app.test_client()
    gateway.stop()


def test_healthz_answers_without_redis_and_shows_details_only_with_the_token(unreachable):
    gateway, client = unreachable
    started = time.monotonic()
    reply = client.get("/healthz")
    assert (reply.status_code, reply.get_json()) == (200, {"status": "ok"})
    assert time.monotonic() - started < 1
    assert client.get("/healthz", headers={"Authorization": "Bearer wrong"}).get_json() == {"status": "ok"}
    details = client.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert details["gateway_id"] == gateway.gateway_id and details["status"] == OK
    assert details["checks"]["process"]["pid"] == os.getpid()
    assert not gateway._started  # liveness starts nothing

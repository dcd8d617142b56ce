"""Runtime versions and admin: changes made through any gateway or the CLI reach every
gateway within a second, survive restarts, and are not undone by a worker re-registering."""

from __future__ import annotations

import subprocess
import sys
import time

from gateway_app.processes import free_port, wait_until

from .conftest import ADMIN_TOKEN, ROOT, call, http_json, request

CALC = request("calc", service="versioned", request_id="c")
ONLY = request("only", service="versioned", request_id="o")


def seconds_until(ws, req: dict, predicate, within: float) -> float:
    """Call repeatedly until ``predicate(frame)``; fail if that takes ``within`` seconds or more."""
    started = time.monotonic()
    while True:
        frame = call(ws, req)
        elapsed = time.monotonic() - started
        if predicate(frame):
            assert elapsed < within, f"took {elapsed:.2f}s"
            return elapsed
        assert elapsed < within, f"still {frame} after {within}s"


def test_disable_through_one_gateway_reaches_the_other_at_once_and_outlives_both(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.versioned")
    first, second = fresh_stack.start_gateway(worker), fresh_stack.start_gateway(worker)
    with second.connect() as ws:
        assert call(ws, CALC)["result"] == "2.0.0"  # no version: the highest enabled one
        status, body = first.admin("POST", "functions/disable",
                                   {"service": "versioned", "request_type": "calc", "version": "2.0.0"})
        assert status == 200
        assert body == {"changed": [{"service": "versioned", "request_type": "calc", "version": "2.0.0",
                                     "disabled": True}]}
        # disabling the latest falls back to the next highest, on the other gateway, within a second
        seconds_until(ws, CALC, lambda f: f["result"] == "1.0.0", within=1.0)
        assert call(ws, {**CALC, "version": "2.0.0"})["error"] == "disabled function: calc version 2.0.0"
        assert call(ws, {**CALC, "version": "1.0.0"})["result"] == "1.0.0"

    done = fresh_stack.cli("admin", "disable", "versioned", "only")  # the CLI: Redis only, no HTTP
    assert done.returncode == 0, done.stderr
    assert "disabled versioned.only version 1.0.0" in done.stdout
    with first.connect() as ws:
        seconds_until(ws, ONLY, lambda f: f["error"] == "unsupported function: only version latest", within=1.0)

    for gateway in (first, second):
        fresh_stack.stop(gateway.process)
    restarted = fresh_stack.start_gateway(worker)
    with restarted.connect() as ws:
        assert call(ws, CALC)["result"] == "1.0.0"
        assert call(ws, ONLY)["error"] == "unsupported function: only version latest"
        assert call(ws, {**ONLY, "version": "1.0.0"})["error"] == "disabled function: only version 1.0.0"

    done = fresh_stack.cli("admin", "enable", "versioned", "calc")  # every version
    assert done.returncode == 0, done.stderr
    with restarted.connect() as ws:
        seconds_until(ws, CALC, lambda f: f["result"] == "2.0.0", within=1.0)


def test_a_worker_registering_again_does_not_undo_a_disable(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.versioned")
    gateway = fresh_stack.start_gateway(worker)
    assert fresh_stack.cli("admin", "disable", "versioned", "calc", "--version", "2.0.0").returncode == 0
    fresh_stack.stop(worker)
    # a new release: its push is registered again (not skipped as unchanged)
    restarted = fresh_stack.start_worker("tests.services.versioned", VERSIONED_CONFIG_VERSION="release-2")
    wait_until(lambda: fresh_stack.cli_json("pushed-services")["versioned"]["config_version"] == "release-2", 10,
               "the new release's push is registered")
    wait_until(lambda: fresh_stack.sees_worker(gateway, fresh_stack.node_of(restarted)), 10, "gateway sees it")
    with gateway.connect() as ws:
        assert call(ws, CALC)["result"] == "1.0.0"
        assert call(ws, {**CALC, "version": "2.0.0"})["error"] == "disabled function: calc version 2.0.0"
    listing = {(f["request_type"], f["version"]): f for f in fresh_stack.cli_json("admin", "list")}
    assert listing[("calc", "2.0.0")]["disabled"] is True and listing[("calc", "2.0.0")]["override"] == "disabled"
    assert listing[("calc", "1.0.0")]["disabled"] is False and listing[("calc", "1.0.0")]["latest"] is True


def test_a_new_version_from_a_fresh_worker_is_callable_and_becomes_the_default(fresh_stack):
    old = fresh_stack.start_worker("tests.services.versioned")
    gateway = fresh_stack.start_gateway(old)
    with gateway.connect() as ws:
        assert call(ws, CALC)["result"] == "2.0.0"
        assert call(ws, {**CALC, "version": "3.0.0"})["error"] == "unsupported function: calc version 3.0.0"
        new = fresh_stack.start_worker("tests.services.versioned_next")
        wait_until(lambda: fresh_stack.sees_worker(gateway, fresh_stack.node_of(new)), 10, "gateway sees 3.0.0")
        assert call(ws, {**CALC, "version": "3.0.0"})["result"] == "3.0.0"
        for i in range(5):  # the default is now 3.0.0, served by the only worker that has it
            assert call(ws, {**CALC, "request_id": i})["result"] == "3.0.0"
        assert call(ws, {**CALC, "version": "1.0.0"})["result"] == "1.0.0"  # older versions stay


def test_admin_list_and_cli_json_print_what_the_api_returns(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.versioned")
    gateway = fresh_stack.start_gateway(worker)
    status, api_listing = gateway.admin("GET", "functions")
    assert status == 200
    assert fresh_stack.cli_json("admin", "list") == api_listing
    node = fresh_stack.node_of(worker)
    assert [(f["request_type"], f["version"], f["latest"], f["available"], f["nodes"]) for f in api_listing] == [
        ("calc", "1.0.0", False, True, [node]), ("calc", "2.0.0", True, True, [node]),
        ("only", "1.0.0", True, True, [node])]
    assert gateway.admin("GET", "functions?service=nosuch") == (200, [])
    assert fresh_stack.cli_json("pushed-services") == gateway.admin("GET", "pushed-services")[1]
    pushed = fresh_stack.cli_json("pushed-services")["versioned"]
    assert pushed["source"] == "push" and pushed["nodes"] == [node] and pushed["functions"] == 3

    cache = fresh_stack.cli_json("cache-status")
    assert (cache["count"], cache["services"], cache["nodes"]) == (3, ["versioned"], {node: ["versioned"]})
    assert gateway.admin("GET", "cache-status")[1]["by_service"] == cache["by_service"]

    text = fresh_stack.cli("admin", "list")
    assert text.returncode == 0 and "versioned" in text.stdout and "calc" in text.stdout

    version = pushed["config_version"]
    assert fresh_stack.cli_json("admin", "verify", "versioned", version)["status"] == "matched"
    assert gateway.admin("GET", f"verify?service=versioned&config_version={version}")[1]["status"] == "matched"
    assert fresh_stack.cli_json("admin", "verify", "versioned", "other") == {
        "service": "versioned", "status": "mismatch", "config_version": "other", "stored": version}
    assert fresh_stack.cli_json("admin", "verify", "nosuch", "1")["status"] == "not_found"


def test_unknown_functions_are_a_clear_error_with_a_non_zero_exit(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.versioned")
    gateway = fresh_stack.start_gateway(worker)
    for verb in ("disable", "enable", "delete"):
        done = fresh_stack.cli("admin", verb, "versioned", "nosuch")
        assert done.returncode == 1
        assert done.stderr.strip() == ("genapi admin: no function versioned.nosuch is registered "
                                       "(`genapi admin list` shows what is)")
    done = fresh_stack.cli("admin", "disable", "versioned", "calc", "--version", "9.9.9")
    assert done.returncode == 1 and "versioned.calc version 9.9.9" in done.stderr
    status, body = gateway.admin("POST", "functions/disable", {"service": "versioned", "request_type": "nosuch"})
    assert status == 404 and "versioned.nosuch" in body["error"]
    status, body = gateway.admin("POST", "functions/disable", {"service": "versioned"})
    assert status == 400 and "request_type" in body["error"]


def test_delete_removes_a_function_at_once_and_a_restarted_worker_brings_it_back(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.versioned")
    gateway = fresh_stack.start_gateway(worker)
    status, body = gateway.admin("POST", "functions/delete", {"service": "versioned", "request_type": "calc"})
    assert status == 200 and [c["version"] for c in body["changed"]] == ["1.0.0", "2.0.0"]
    with gateway.connect() as ws:
        seconds_until(ws, CALC, lambda f: f["error"] == "unsupported function: calc version latest", within=1.0)
        assert [f["request_type"] for f in fresh_stack.cli_json("admin", "list")] == ["only"]
        fresh_stack.stop(worker)
        again = fresh_stack.start_worker("tests.services.versioned")  # same code, same config_version
        wait_until(lambda: fresh_stack.sees_worker(gateway, fresh_stack.node_of(again)), 10, "gateway sees it")
        assert call(ws, CALC)["result"] == "2.0.0"


def test_admin_api_refuses_without_the_token_and_sensitive_actions_without_permission(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.sample")
    gateway = fresh_stack.start_gateway(worker)
    assert gateway.admin("GET", "functions", token=None)[0] == 401
    assert gateway.admin("GET", "functions", token="wrong-token")[0] == 401
    assert gateway.admin("GET", "functions", token=ADMIN_TOKEN + "x")[0] == 401
    assert gateway.admin("POST", "functions/disable", {"service": "sample", "request_type": "add"},
                         token=None)[0] == 401
    # the token alone does not allow the sensitive actions (GENAPI_ADMIN_ACTIONS is empty)
    status, body = gateway.admin("POST", "detail-error", {"enabled": True})
    assert status == 403 and "change_detail_error" in body["error"]
    status, body = gateway.admin("POST", "push", {"service": "sample"})
    assert status == 403 and "push_config" in body["error"]
    assert "action 'change_detail_error' is not in GENAPI_ADMIN_ACTIONS" in fresh_stack.log_of(gateway.process)
    with gateway.connect() as ws:
        assert call(ws, request("boom"))["error"] == "Internal Server Error"


def test_detail_errors_switched_at_runtime_reach_every_gateway(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.sample")
    allowed = fresh_stack.start_gateway(worker, GENAPI_ADMIN_ACTIONS="change_detail_error")
    other = fresh_stack.start_gateway(worker)
    with other.connect() as ws:
        assert call(ws, request("boom"))["error"] == "Internal Server Error"
        assert allowed.admin("POST", "detail-error", {"enabled": True}) == (200, {"detail_error": True})
        seconds_until(ws, request("boom"), lambda f: f["error"] == "Internal Server Error: ValueError: boom went "
                      "the function", within=1.0)
        assert fresh_stack.cli("admin", "detail-error", "off").returncode == 0
        seconds_until(ws, request("boom"), lambda f: f["error"] == "Internal Server Error", within=1.0)


def test_without_an_admin_token_the_admin_api_does_not_exist(fresh_stack):
    gateway = fresh_stack.start_gateway(GENAPI_ADMIN_TOKEN="")
    for token in (None, ADMIN_TOKEN, ""):
        assert gateway.admin("GET", "functions", token=token)[0] == 404
    assert gateway.admin("POST", "functions/disable", {"service": "a", "request_type": "b"})[0] == 404
    # readiness still answers, without details
    assert gateway.status() == {"status": "ok"}


def test_a_gateway_nobody_has_called_yet_registers_pushes(fresh_stack):
    port = free_port()
    process = fresh_stack._spawn("gateway", [sys.executable, "-m", "gateway_app", "gateway", "--port", str(port)],
                                 fresh_stack.env())
    # only liveness is asked, which starts nothing: the gateway starts its own background work
    wait_until(lambda: http_json(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"}), 30, "gateway",
               process)
    fresh_stack.start_worker("tests.services.versioned")
    wait_until(lambda: len(fresh_stack.cli_json("admin", "list")) == 3, 10, "the push is registered")


def test_the_admin_cli_needs_only_the_redis_url(fresh_stack):
    worker = fresh_stack.start_worker("tests.services.versioned")
    gateway = fresh_stack.start_gateway(worker)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "GENAPI_REDIS_URL": fresh_stack.redis_url}

    def genapi(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway_app", *args], env=env, cwd="/", capture_output=True,
                              text=True, timeout=60)

    done = genapi("admin", "disable", "versioned", "only", "--version", "1.0.0")
    assert (done.returncode, done.stdout, done.stderr) == (0, "disabled versioned.only version 1.0.0\n", "")
    with gateway.connect() as ws:
        seconds_until(ws, ONLY, lambda f: f["error"] == "unsupported function: only version latest", within=1.0)
    assert genapi("cache-status").returncode == 0 and genapi("pushed-services").returncode == 0
    unreachable = dict(env, GENAPI_REDIS_URL=f"redis://:sekrit@127.0.0.1:{free_port()}/0")
    done = subprocess.run([sys.executable, "-m", "gateway_app", "admin", "list"], env=unreachable, cwd="/",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot reach Redis at redis://:***@127.0.0.1" in done.stderr
    assert "sekrit" not in done.stderr + done.stdout and "Traceback" not in done.stderr

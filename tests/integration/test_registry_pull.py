"""Pull mode: the gateways ask a service's workers for its configs, once per interval
between them all, skip unchanged versions, and refetch on a forced pull."""

from __future__ import annotations

import time

from gateway_app.processes import wait_until

from .conftest import call, request

TOKEN = "pull-token-for-tests"
HELLO = request("hello", {"name": "bo"}, service="pulled")
INTERVAL = 0.5


def pull_state(stack) -> dict:
    return stack.cli_json("cache-status")["pull"]


def test_pull_mode_registers_a_service_that_never_pushes_and_skips_unchanged_versions(fresh_stack):
    env = {"GENAPI_SERVICE_CONFIGS": "pulled", "GENAPI_PULL_INTERVAL": f"{INTERVAL}", "GENAPI_PUSH_TOKEN": TOKEN}
    worker = fresh_stack.start_worker("tests.services.pull_only", GENAPI_PUSH_TOKEN=TOKEN)
    first, second = fresh_stack.start_gateway(**env), fresh_stack.start_gateway(**env)
    with second.connect() as ws:
        wait_until(lambda: call(ws, HELLO).get("result") == "pulled hello bo", 10, "the pulled function answers")
    assert "pushed nothing (pull-only services)" in fresh_stack.log_of(worker)
    assert fresh_stack.cli_json("pushed-services")["pulled"]["source"] == "pull"

    # later rounds find the same config_version and skip it
    wait_until(lambda: pull_state(fresh_stack)["services"]["pulled"]["counts"]["skipped"] >= 3, 15,
               "unchanged versions are skipped")
    counts = pull_state(fresh_stack)["services"]["pulled"]["counts"]
    assert counts["pulled"] == 1 and counts["failed"] == 0

    # two gateway processes share one schedule: about one round per interval, not two
    before, started = pull_state(fresh_stack)["rounds"], time.monotonic()
    wait_until(lambda: time.monotonic() - started > 3, 5, "three seconds of rounds")
    rounds = pull_state(fresh_stack)["rounds"] - before
    assert 1 <= rounds <= 3 / INTERVAL + 2, f"{rounds} rounds in 3 s with a {INTERVAL} s interval"

    # a forced pull refetches everything
    done = fresh_stack.cli("admin", "pull", "pulled")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pulled: pulled (1 function(s))"
    assert pull_state(fresh_stack)["services"]["pulled"]["counts"]["pulled"] == 2
    assert first.admin("GET", "cache-status")[1]["pull"]["services"]["pulled"]["counts"]["pulled"] == 2


def test_pull_of_a_service_without_live_workers_fails_and_backs_off(fresh_stack):
    gateway = fresh_stack.start_gateway(GENAPI_SERVICE_CONFIGS="nobody", GENAPI_PULL_INTERVAL="0.2")
    wait_until(lambda: pull_state(fresh_stack)["failures"] >= 2, 10, "failed rounds")
    state = pull_state(fresh_stack)
    assert state["services"]["nobody"]["last"] == "failed"
    assert state["services"]["nobody"]["detail"] == "no live worker serves nobody"
    assert state["next_in_s"] == min(0.2 * 2 ** state["failures"], 300)
    done = fresh_stack.cli("admin", "pull", "nobody")
    assert done.returncode == 1 and "nobody: failed (no live worker serves nobody)" in done.stdout
    assert gateway.status()["status"] == "ok"


def test_a_forced_pull_without_any_gateway_says_so(fresh_stack):
    done = fresh_stack.cli("admin", "pull", "--no-wait")
    assert done.returncode == 0 and done.stdout.strip() == "pull requested"
    started = time.monotonic()
    done = fresh_stack.cli("admin", "pull", "--wait", "1")
    assert done.returncode == 1 and "no gateway ran the pull within 1s" in done.stderr
    assert time.monotonic() - started < 8  # it waited --wait, not GENAPI_PULL_TIMEOUT + 10 s
    done = fresh_stack.cli("admin", "pull", "--wait", "0")
    assert done.returncode == 2 and "must be more than 0" in done.stderr

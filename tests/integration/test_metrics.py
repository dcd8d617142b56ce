"""``GET /metrics`` of a real `genapi gateway --workers 2` after a mixed workload: the
counters, the duration histogram and the connections gauge, summed over both gunicorn
worker processes, with no per-user or per-request labels; and the access setting."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_app import processes

from .conftest import ADMIN_TOKEN, call, request

LIMITED_PER_USER = 2
ALLOWED_LABELS = {"service", "request_type", "mode", "outcome", "scope", "pool", "state", "type", "kind",
                  "breaker", "le"}


def scrape(gateway, token: str | None = None) -> dict[str, dict[tuple, float]]:
    """Every sample of ``/metrics``: name → {sorted label items: value}."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"http://127.0.0.1:{gateway.port}/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def status_of(gateway, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{gateway.port}{path}",
                                                           headers=headers), timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def metrics_stack(redis_server, tmp_path_factory):
    from .conftest import Stack, _databases

    logs = tmp_path_factory.mktemp("metrics")
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", logs)
    try:
        worker = stack.start_worker("tests.services.sample")
        limits = {"api_limits": [{"service": "sample", "request_type": "echo", "key": "user_id",
                                  "max_requests": LIMITED_PER_USER, "window_ms": 60000}]}
        stack.metrics_dir = logs / "prometheus"
        stack.gateway = stack.start_gateway(worker, args=("--workers", "2"), GENAPI_RATE_LIMITS=json.dumps(limits),
                                            PROMETHEUS_MULTIPROC_DIR=str(stack.metrics_dir))
        # start_gateway saw the worker through one process; each status request is a new
        # connection, which either process may accept: both must have loaded the functions
        node = stack.node_of(worker)
        processes.wait_until(lambda: all(stack.sees_worker(stack.gateway, node) for _ in range(8)), 10,
                             "both gateway processes see the worker")
        yield stack
    finally:
        stack.stop_all()


def pids_with_requests(directory: Path) -> set[str]:
    """Gateway processes that have written request counters (one file per process)."""
    return {path.stem.rsplit("_", 1)[1] for path in directory.glob("counter_*.db")}


def test_mixed_workload_is_counted_across_both_worker_processes(metrics_stack):
    gateway = metrics_stack.gateway
    ok_calls = 0
    # new sockets until both gunicorn processes have answered requests (the kernel picks one per socket)
    for index in range(60):
        with gateway.connect(user=f"user-{index}") as ws:
            assert call(ws, request("add", {"a": 1, "b": index}, request_id=f"add-{index}"))["success"] is True
            ok_calls += 1
        if index >= 3 and len(pids_with_requests(metrics_stack.metrics_dir)) >= 2:
            break
    # counters are updated within Later.INTERVAL (0.2 s) of the answer, off the request's path
    processes.wait_until(lambda: len(pids_with_requests(metrics_stack.metrics_dir)) >= 2, 5,
                         "requests counted by both processes (or one process took every connection)")

    with gateway.connect(user="mallory") as ws:
        error = call(ws, request("boom", request_id="boom-1"))
        unknown = call(ws, request("no_such_function", request_id="unknown-1"))
        echoes = [call(ws, request("echo", {"text": "hi"}, request_id=f"echo-{n}")) for n in range(3)]
    assert error["success"] is False and unknown["error"].startswith("unsupported function")
    assert [frame["success"] for frame in echoes] == [True, True, False]
    assert echoes[2]["error"].startswith("Rate limit exceeded")

    total = "genapi_requests_total"
    # a scrape counts its own process's requests at once, the other process's within 0.2 s
    def all_counted() -> bool:
        now = scrape(gateway)
        return value(now, total, service="sample", request_type="echo", mode="sync", outcome="rate_limited") == 1 \
            and value(now, total, service="sample", request_type="add", mode="sync", outcome="ok") == ok_calls

    processes.wait_until(all_counted, 5, "every answer counted")
    samples = scrape(gateway)
    assert value(samples, total, service="sample", request_type="add", mode="sync", outcome="ok") == ok_calls
    assert value(samples, total, service="sample", request_type="boom", mode="sync", outcome="error") == 1
    assert value(samples, total, service="", request_type="", mode="", outcome="unsupported_function") == 1
    assert value(samples, total, service="sample", request_type="echo", mode="sync", outcome="ok") == 2
    assert value(samples, total, service="sample", request_type="echo", mode="sync", outcome="rate_limited") == 1
    assert value(samples, "genapi_rate_limited_total", service="sample", request_type="echo", scope="api") == 1

    histogram = dict(service="sample", request_type="add", mode="sync")
    assert value(samples, "genapi_request_duration_seconds_count", **histogram) == ok_calls
    assert 0 < value(samples, "genapi_request_duration_seconds_sum", **histogram) < ok_calls * 5
    assert value(samples, "genapi_request_duration_seconds_bucket", le="+Inf", **histogram) == ok_calls
    assert value(samples, "genapi_registered_functions", service="sample") >= 10
    assert value(samples, "genapi_live_workers") == 1

    # every scrape, whichever process answers it, sums both processes' values
    for _ in range(6):
        again = scrape(gateway)
        assert value(again, total, service="sample", request_type="add", mode="sync", outcome="ok") == ok_calls

    # nothing is labelled by user, device or request
    for name, series in samples.items():
        for labels in series:
            names = {key for key, _ in labels}
            assert names <= ALLOWED_LABELS, (name, names)
            for _, label_value in labels:
                assert not label_value.startswith(("user-", "add-", "echo-", "boom-", "unknown-")), (name, labels)
                assert label_value != "mallory"


def test_the_connections_gauge_sums_open_sockets_over_processes(metrics_stack):
    gateway = metrics_stack.gateway
    sockets = [gateway.connect(user=f"watcher-{n}") for n in range(12)]
    try:
        for ws in sockets:  # each socket has been accepted and served once
            assert call(ws, {"service": "gateway", "request_type": "ping", "request_id": "p", "args": {}})["success"]
        assert value(scrape(gateway), "genapi_connections") == 12
    finally:
        for ws in sockets:
            ws.close()
    processes.wait_until(lambda: value(scrape(gateway), "genapi_connections") == 0, 10, "connections gauge at 0")


def test_metrics_access_follows_the_setting(fresh_stack):
    guarded = fresh_stack.start_gateway(GENAPI_METRICS="token")
    assert status_of(guarded, "/metrics") == 401
    assert status_of(guarded, "/metrics", token="wrong") == 401
    assert status_of(guarded, "/metrics", token=ADMIN_TOKEN) == 200
    closed = fresh_stack.start_gateway(GENAPI_METRICS="off")
    assert status_of(closed, "/metrics", token=ADMIN_TOKEN) == 404
    without_admin = fresh_stack.start_gateway(GENAPI_METRICS="token", GENAPI_ADMIN_TOKEN="")
    assert status_of(without_admin, "/metrics") == 404

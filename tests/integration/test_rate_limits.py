"""Rate limits (GENAPI_RATE_LIMITS) with a real Redis, one `genapi worker tests.services.flaky`
and two gateway processes sharing every bucket: keys, concurrency, permissions, the CLI and
admin API, runtime changes and a limiter whose Redis is gone."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import pytest
import redis
from websockets.sync.client import connect

from gateway_app import processes

from .conftest import Stack, _databases, call, request

WINDOW_MS = 60000
GLOBAL_MAX = 25
LIMITED = re.compile(r"Rate limit exceeded\. Please retry after (\d+) seconds\.")


def api_limit(request_type: str, key: str, max_requests: int, window_ms: int = WINDOW_MS) -> dict:
    return {"service": "flaky", "request_type": request_type, "key": key, "max_requests": max_requests,
            "window_ms": window_ms}


LIMITS = {
    "enabled": True, "fail_open": True, "timeout_ms": 1000,
    "global_limits": [{"key": "user_id", "max_requests": GLOBAL_MAX, "window_ms": WINDOW_MS}],
    "api_limits": [
        api_limit("ok", "user_id", 20),
        api_limit("limited", "user_id", 2),
        api_limit("by_device", "device_id", 2),
        api_limit("by_ip", "ip_address", 2),
        api_limit("room", "room", 2),
        api_limit("staff_only", "user_id", 1),
    ],
}


def rq(request_type: str, args: dict | None = None, request_id="rl", **extra) -> dict:
    return request(request_type, args, request_id=request_id, service="flaky", **extra)


OK, PLAIN, LIMITED_FN, TUNABLE = rq("ok"), rq("plain"), rq("limited"), rq("tunable")
BY_DEVICE, BY_IP, STAFF = rq("by_device"), rq("by_ip"), rq("staff_only")


def who(prefix: str) -> str:
    """A user (or device, room…) no other test uses: every test starts with full budgets."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def passed(frame: dict) -> bool:
    return frame["success"] is True and frame["error"] is None


def assert_passes(frame: dict) -> None:
    assert passed(frame), frame


def assert_limited(frame: dict, window_ms: int = WINDOW_MS) -> int:
    """The rate-limit error, retryable, with S within the window; returns S."""
    assert frame["success"] is False and frame["result"] is None, frame
    match = LIMITED.fullmatch(frame["error"] or "")
    assert match, frame
    assert frame["can_retry"] is True, frame
    seconds = int(match.group(1))
    assert window_ms // 1000 - 2 <= seconds <= window_ms // 1000, frame
    return seconds


def runs(stack: Stack, name: str) -> int:
    return int(stack.redis.get(f"flaky:runs:{name}") or 0)


def status_rows(entries: list[dict]) -> list[tuple]:
    """rl-status entries without the time-dependent retry_after_ms."""
    return [(e["scope"], e["key_type"], e["key"], e["max_requests"], e["window_ms"], e["current_requests"],
             e["remaining"]) for e in entries]


def genapi(stack: Stack, *args: str):
    """``genapi ARGS...`` as an operator runs it: with the gateways' GENAPI_RATE_LIMITS (the
    CLI works on Redis directly; the settings come from its own environment)."""
    return stack.cli(*args, GENAPI_RATE_LIMITS=json.dumps(LIMITS))


def genapi_json(stack: Stack, *args: str):
    return stack.cli_json(*args, GENAPI_RATE_LIMITS=json.dumps(LIMITS))


@pytest.fixture(scope="module")
def rl_stack(redis_server, tmp_path_factory):
    """One flaky worker; gateway ``trusting`` (takes the client address from X-Forwarded-For, may
    change the limits through the admin API) and gateway ``direct`` (TCP peer, public endpoint on,
    no admin actions), both with LIMITS."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("ratelimits"))
    try:
        stack.worker = stack.start_worker("tests.services.flaky")
        limits = json.dumps(LIMITS)
        stack.trusting = stack.start_gateway(stack.worker, GENAPI_RATE_LIMITS=limits,
                                             GENAPI_TRUSTED_PROXY_HEADER="X-Forwarded-For",
                                             GENAPI_ADMIN_ACTIONS="update_rate_limit_config")
        stack.direct = stack.start_gateway(stack.worker, GENAPI_RATE_LIMITS=limits, GENAPI_PUBLIC_WS="1")
        stack.gateways = (stack.trusting, stack.direct)
        yield stack
    finally:
        stack.stop_all()


def test_exactly_n_of_100_concurrent_requests_over_two_gateways_pass_a_limit_of_n(rl_stack):
    user = who("crowd")
    sockets_per_gateway, per_socket = 5, 10
    before = runs(rl_stack, "ok")
    sockets = [gateway.connect(user=user, roles=()) for gateway in rl_stack.gateways
               for _ in range(sockets_per_gateway)]
    start = threading.Barrier(len(sockets))
    answers: list[list[dict]] = [[] for _ in sockets]
    errors: list[BaseException] = []

    def client(index: int, ws) -> None:
        try:
            start.wait(10)
            for n in range(per_socket):  # all sent before any answer is read: truly concurrent
                ws.send(json.dumps(rq("ok", request_id=f"{index}-{n}")))
            answers[index] = [json.loads(ws.recv(timeout=30)) for _ in range(per_socket)]
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i, ws)) for i, ws in enumerate(sockets)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for ws in sockets:
            ws.close()
    assert not errors, errors
    frames = [frame for batch in answers for frame in batch]
    assert sorted(f["request_id"] for f in frames) == sorted(f"{i}-{n}" for i in range(len(sockets))
                                                             for n in range(per_socket))
    passing = [f for f in frames if passed(f)]
    assert len(passing) == 20, [f["error"] for f in frames if not passed(f)][:5]
    assert {f["result"] for f in passing} == {"ok"}
    for frame in frames:
        if not passed(frame):
            assert_limited(frame)
    assert runs(rl_stack, "ok") - before == 20  # the refused ones never reached the worker
    status = genapi_json(rl_stack, "rl-status", user, "--service", "flaky", "--request-type", "ok")
    assert status_rows(status) == [("flaky.ok", "user_id", user, 20, WINDOW_MS, 20, 0)]


def test_device_id_limits_use_the_tokens_device_else_the_requests(rl_stack):
    trusting, direct = rl_stack.gateways
    user, phone = who("dev-user"), who("phone")
    with trusting.connect(user=user, roles=(), device=phone) as a, direct.connect(user=user, roles=(),
                                                                                  device=phone) as b:
        assert_passes(call(a, BY_DEVICE))
        assert_passes(call(b, BY_DEVICE))
        assert_limited(call(a, BY_DEVICE))
        # the token's device wins: a device_id in the request does not escape the limit
        assert_limited(call(b, {**BY_DEVICE, "device_id": who("other")}))
    with direct.connect(user=user, roles=(), device=who("phone")) as ws:  # the same user, another device
        assert_passes(call(ws, BY_DEVICE))
        assert_passes(call(ws, BY_DEVICE))
    tablet = who("tablet")
    with trusting.connect(user=user, roles=()) as a, direct.connect(user=user, roles=()) as b:
        assert_passes(call(a, {**BY_DEVICE, "device_id": tablet}))
        assert_passes(call(b, {**BY_DEVICE, "device_id": tablet}))
        assert_limited(call(a, {**BY_DEVICE, "device_id": tablet}))
        assert_passes(call(b, {**BY_DEVICE, "device_id": who("tablet")}))
        for _ in range(4):  # no device at all: the device limit does not apply
            assert_passes(call(a, BY_DEVICE))
    status = genapi_json(rl_stack, "rl-status", tablet, "--service", "flaky", "--request-type", "by_device")
    assert status_rows(status) == [("flaky.by_device", "device_id", tablet, 2, WINDOW_MS, 2, 0)]


def _address() -> str:
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2] or 1}"


def _via(gateway, forwarded: str | None = None):
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else None
    return connect(gateway.url(user=who("ip-user"), roles=()), additional_headers=headers, open_timeout=10)


def test_ip_limits_use_the_trusted_header_else_the_tcp_peer(rl_stack):
    trusting, direct = rl_stack.gateways
    first, second = _address(), _address()
    with _via(trusting, first) as ws:
        assert_passes(call(ws, BY_IP))
        assert_passes(call(ws, BY_IP))
        assert_limited(call(ws, BY_IP))
    with _via(trusting, first) as ws:  # another user, another socket, the same address
        assert_limited(call(ws, BY_IP))
    with _via(trusting, second) as ws:
        assert_passes(call(ws, BY_IP))
    with _via(trusting, f"{_address()}, {first}") as ws:  # the LAST entry is the address
        assert_limited(call(ws, BY_IP))
    with _via(trusting, f"{first}, {_address()}") as ws:
        assert_passes(call(ws, BY_IP))

    # the direct gateway trusts no header: every client is its TCP peer, 127.0.0.1
    with _via(direct, _address()) as x, _via(direct, _address()) as y, _via(direct) as z:
        assert_passes(call(x, BY_IP))
        assert_passes(call(y, BY_IP))
        assert_limited(call(z, BY_IP))
        assert_limited(call(x, BY_IP))
    status = genapi_json(rl_stack, "rl-status", "127.0.0.1", "--service", "flaky", "--request-type", "by_ip",
                               "--key-type", "ip_address")
    assert status_rows(status) == [("flaky.by_ip", "ip_address", "127.0.0.1", 2, WINDOW_MS, 2, 0)]
    status = genapi_json(rl_stack, "rl-status", first, "--service", "flaky", "--request-type", "by_ip")
    assert status_rows(status) == [("flaky.by_ip", "ip_address", first, 2, WINDOW_MS, 2, 0)]


def test_an_argument_named_key_limits_per_value_across_users(rl_stack):
    trusting, direct = rl_stack.gateways
    room = who("room")
    with trusting.connect(user=who("u"), roles=()) as a, direct.connect(user=who("u"), roles=()) as b:
        assert call(a, rq("room", {"room": room}))["result"] == room
        assert call(b, rq("room", {"room": room}))["result"] == room
        assert_limited(call(a, rq("room", {"room": room})))
        assert_limited(call(b, rq("room", {"room": room})))  # another user, the same room
        assert call(a, rq("room", {"room": who("room")}))["result"] is not None
        for _ in range(3):  # no usable value: not limited by that key
            assert_passes(call(a, rq("room", {"room": None})))
            assert_passes(call(b, rq("room", {"room": ""})))


def test_a_request_without_a_user_is_not_limited_by_user_limits(rl_stack):
    with rl_stack.direct.connect(path="/ws/public", user=None) as ws:
        for _ in range(GLOBAL_MAX // 5):  # twice over `limited` (2 per user); no user, so no budget used
            assert call(ws, LIMITED_FN)["result"] == "limited"


def test_a_global_limit_applies_to_every_function_and_resets_from_the_cli(rl_stack):
    trusting, direct = rl_stack.gateways
    user = who("global")
    with trusting.connect(user=user, roles=()) as a, direct.connect(user=user, roles=()) as b:
        for i in range(GLOBAL_MAX):
            assert_passes(call(a if i % 2 else b, PLAIN))
        for req in (PLAIN, OK, TUNABLE, rq("room", {"room": who("room")}), rq("deliberate")):
            assert_limited(call(a, req))
            assert_limited(call(b, req))
        with direct.connect(user=who("other"), roles=()) as other:
            assert_passes(call(other, PLAIN))

        status = genapi_json(rl_stack, "rl-status", user)
        assert status_rows(status) == [("global", "user_id", user, GLOBAL_MAX, WINDOW_MS, GLOBAL_MAX, 0)]
        assert 55000 <= status[0]["retry_after_ms"] <= WINDOW_MS
        assert status_rows(genapi_json(rl_stack, "rl-status", user)) == status_rows(status)  # no hit recorded
        assert genapi_json(rl_stack, "rl-global") == LIMITS["global_limits"]

        done = genapi_json(rl_stack, "admin", "reset-rate-limit", user)
        assert done["reset"] >= 1, done
        assert_passes(call(a, PLAIN))
        assert_passes(call(b, OK))
    status = genapi_json(rl_stack, "rl-status", user)
    assert status_rows(status) == [("global", "user_id", user, GLOBAL_MAX, WINDOW_MS, 2, GLOBAL_MAX - 2)]


def test_a_user_denied_by_permission_consumes_no_budget(rl_stack):
    trusting, direct = rl_stack.gateways
    user = who("viewer")
    with trusting.connect(user=user, roles=("viewer",)) as a, direct.connect(user=user, roles=("viewer",)) as b:
        for ws in (a, b, a, b):
            frame = call(ws, STAFF)
            assert frame["error"] == "Permission denied" and frame["can_retry"] is False, frame
    scoped = genapi_json(rl_stack, "rl-status", user, "--service", "flaky", "--request-type", "staff_only")
    assert status_rows(scoped) == [("flaky.staff_only", "user_id", user, 1, WINDOW_MS, 0, 1)]
    assert status_rows(genapi_json(rl_stack, "rl-status", user)) == [
        ("global", "user_id", user, GLOBAL_MAX, WINDOW_MS, 0, GLOBAL_MAX)]
    assert runs(rl_stack, "staff_only") == 0
    # the same user with the role now: its whole budget (1) is still there
    with direct.connect(user=user, roles=("staff",)) as ws:
        assert call(ws, STAFF)["result"] == "staff"
        assert_limited(call(ws, STAFF))


def test_reset_rate_limit_from_the_cli_and_the_admin_api_restores_the_budget(rl_stack):
    trusting, direct = rl_stack.gateways
    user = who("reset")
    scope = ("--service", "flaky", "--request-type", "limited")
    with trusting.connect(user=user, roles=()) as a, direct.connect(user=user, roles=()) as b:
        assert_passes(call(a, LIMITED_FN))
        assert_passes(call(b, LIMITED_FN))
        assert_limited(call(a, LIMITED_FN))

        status = genapi_json(rl_stack, "rl-status", user, *scope)
        assert status_rows(status) == [("flaky.limited", "user_id", user, 2, WINDOW_MS, 2, 0)]
        assert 55000 <= status[0]["retry_after_ms"] <= WINDOW_MS
        code, api_status = direct.admin("GET", f"rate-limits/status?key={user}&service=flaky&request_type=limited")
        assert code == 200 and status_rows(api_status) == status_rows(status)

        # another key type of the same key: nothing to reset, still limited
        done = genapi_json(rl_stack, "admin", "reset-rate-limit", user, *scope, "--key-type", "device_id")
        assert done["reset"] == 0, done
        assert_limited(call(b, LIMITED_FN))

        done = genapi_json(rl_stack, "admin", "reset-rate-limit", user, *scope)
        assert done["reset"] >= 1, done
        assert status_rows(genapi_json(rl_stack, "rl-status", user, *scope)) == [
            ("flaky.limited", "user_id", user, 2, WINDOW_MS, 0, 2)]
        assert_passes(call(b, LIMITED_FN))
        assert_passes(call(a, LIMITED_FN))
        assert_limited(call(b, LIMITED_FN))

        code, body = direct.admin("POST", "rate-limits/reset",
                                  {"key": user, "service": "flaky", "request_type": "limited"})
        assert code == 200 and body["reset"] >= 1, (code, body)
        assert_passes(call(a, LIMITED_FN))
        assert_passes(call(b, LIMITED_FN))
        assert_limited(call(a, LIMITED_FN))


def test_rl_config_shows_the_settings_like_the_admin_api(rl_stack):
    config = genapi_json(rl_stack, "rl-config")
    assert config == {**LIMITS, "source": "settings"}
    assert rl_stack.direct.admin("GET", "rate-limits") == (200, config)
    assert rl_stack.trusting.admin("GET", "rate-limits") == (200, config)
    text = genapi(rl_stack, "rl-config")
    assert text.returncode == 0 and "flaky" in text.stdout, text


def test_the_cli_without_the_gateways_settings_reports_and_resets_what_the_gateways_run(rl_stack):
    # an operator's shell rarely has GENAPI_RATE_LIMITS: the gateways recorded theirs at start
    assert rl_stack.cli_json("rl-config")["api_limits"] == LIMITS["api_limits"]
    user = who("bare-cli")
    with rl_stack.direct.connect(user=user) as ws:
        assert_passes(call(ws, rq("limited")))
    [entry] = rl_stack.cli_json("rl-status", user, "--service", "flaky", "--request-type", "limited")
    assert entry["current_requests"] == 1
    done = rl_stack.cli_json("admin", "reset-rate-limit", user, "--service", "flaky", "--request-type", "limited")
    assert done["reset"] == 1
    [entry] = rl_stack.cli_json("rl-status", user, "--service", "flaky", "--request-type", "limited")
    assert entry["current_requests"] == 0


def test_with_the_limiters_redis_gone_fail_open_allows_and_fail_closed_refuses(rl_stack, tmp_path):
    port = processes.free_port()
    limiter = processes.start_redis(port, tmp_path, log=open(tmp_path / "limiter-redis.log", "ab"))
    try:
        processes.wait_until(lambda: redis.Redis(port=port).ping(), 10, "the limiter's redis-server", limiter)
        config = {"timeout_ms": 300, "api_limits": [api_limit("limited", "user_id", 2)]}
        env = {"GENAPI_RATE_LIMIT_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        open_gateway = rl_stack.start_gateway(rl_stack.worker, GENAPI_RATE_LIMITS=json.dumps(
            {**config, "fail_open": True}), **env)
        closed_gateway = rl_stack.start_gateway(rl_stack.worker, GENAPI_RATE_LIMITS=json.dumps(
            {**config, "fail_open": False}), **env)
        user = who("outage")
        with open_gateway.connect(user=user, roles=()) as ws:
            assert_passes(call(ws, LIMITED_FN))
            assert_passes(call(ws, LIMITED_FN))
            assert_limited(call(ws, LIMITED_FN))
        assert redis.Redis(port=port).dbsize() > 0  # the buckets live on the limiter's Redis

        processes.stop(limiter)
        with open_gateway.connect(user=user, roles=()) as o, closed_gateway.connect(user=who("outage"),
                                                                                    roles=()) as c:
            for _ in range(4):  # nothing can be counted: allowed, even past the budget
                started = time.monotonic()
                assert call(o, LIMITED_FN)["result"] == "limited"
                assert time.monotonic() - started < 3
            for _ in range(2):
                frame = call(c, LIMITED_FN)
                assert frame["success"] is False and frame["error"] == "Rate limit service unavailable", frame
                assert frame["can_retry"] is True
        for gateway in (open_gateway, closed_gateway):
            rl_stack.stop(gateway.process)
    finally:
        processes.stop(limiter)


def _pattern(gateway, calls: int) -> list[bool]:
    """Which of ``calls`` calls of `tunable` by a fresh user pass."""
    with gateway.connect(user=who("tune"), roles=()) as ws:
        return [passed(call(ws, rq("tunable", request_id=i))) for i in range(calls)]


def _takes_effect_everywhere(stack, expected: list[bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    for gateway in stack.gateways:
        while (seen := _pattern(gateway, len(expected))) != expected:
            assert time.monotonic() < deadline, f"gateway {gateway.port}: still {seen}, expected {expected}"
            time.sleep(0.1)


def test_limits_replaced_at_runtime_reach_both_gateways_without_restart(rl_stack):
    trusting, direct = rl_stack.gateways
    tunable = [api_limit("tunable", "user_id", n) for n in (1, 3)]
    try:
        assert _pattern(trusting, 4) == [True] * 4  # no limit of its own in the settings

        one = LIMITS["api_limits"] + tunable[:1]
        done = genapi(rl_stack, "admin", "set-rate-limits", json.dumps({"api_limits": one}))
        assert done.returncode == 0, done.stderr
        config = genapi_json(rl_stack, "rl-config")
        assert config == {**LIMITS, "api_limits": one, "source": "runtime"}
        _takes_effect_everywhere(rl_stack, [True, False, False])

        body = {"api_limits": LIMITS["api_limits"] + tunable[1:]}
        code, refusal = direct.admin("PUT", "rate-limits", body)
        assert code == 403 and "update_rate_limit_config" in refusal["error"], (code, refusal)
        assert direct.admin("DELETE", "rate-limits")[0] == 403
        code, _ = trusting.admin("PUT", "rate-limits", body)
        assert code == 200
        _takes_effect_everywhere(rl_stack, [True, True, True, False])
        assert direct.admin("GET", "rate-limits") == (200, genapi_json(rl_stack, "rl-config"))
        assert genapi_json(rl_stack, "rl-config")["api_limits"] == body["api_limits"]

        assert trusting.admin("DELETE", "rate-limits")[0] == 200  # back to GENAPI_RATE_LIMITS
        _takes_effect_everywhere(rl_stack, [True] * 4)
        assert genapi_json(rl_stack, "rl-config") == {**LIMITS, "source": "settings"}

        done = genapi(rl_stack, "admin", "set-rate-limits", json.dumps({"api_limits": tunable[:1]}))
        assert done.returncode == 0, done.stderr
        _takes_effect_everywhere(rl_stack, [True, False])
        done = genapi(rl_stack, "admin", "set-rate-limits", "--clear")
        assert done.returncode == 0, done.stderr
        _takes_effect_everywhere(rl_stack, [True] * 4)
        assert genapi_json(rl_stack, "rl-config")["source"] == "settings"
    finally:
        genapi(rl_stack, "admin", "set-rate-limits", "--clear")

"""Permissions end to end: ``check_permission`` in the gateway (every mode, on two gateway
processes) and ``permission_callback`` on the worker, over real WebSocket clients."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .conftest import Stack, _databases, call, frames_until_terminal, request

SERVICE = "policies"
DENIED = {"result": None, "success": False, "error": "Permission denied", "async": False,
          "has_more": False, "can_retry": False}


@pytest.fixture(scope="module")
def policy_stack(redis_server, tmp_path_factory):
    """One ``tests.services.policies`` worker and two gateways (public endpoint on), on a
    database of their own."""
    stack = Stack(f"redis://127.0.0.1:{redis_server}/{next(_databases)}", tmp_path_factory.mktemp("permissions"))
    try:
        stack.worker = stack.start_worker("tests.services.policies")
        stack.gateways = [stack.start_gateway(stack.worker, GENAPI_PUBLIC_WS="1") for _ in range(2)]
        yield stack
    finally:
        stack.stop_all()


def rq(request_type: str, args: dict | None = None, request_id="p1", **extra) -> dict:
    return request(request_type, args, request_id=request_id, service=SERVICE, **extra)


def ask(gateway, request_type: str, args: dict | None = None, user="alice", roles=(),
        extra: dict | None = None) -> dict:
    """One call on a fresh connection whose token says ``user`` and ``roles`` (``user=None``:
    anonymous, on ``/ws/public``); ``extra`` are more top-level request fields."""
    kwargs = {"path": "/ws/public", "user": None} if user is None else {"user": user, "roles": roles}
    with gateway.connect(**kwargs) as ws:
        return call(ws, rq(request_type, args, **(extra or {})))


def on_every_gateway(stack, request_type: str, args: dict | None = None, **kwargs) -> list[dict]:
    """The same call on each of the two gateway processes."""
    return [ask(gateway, request_type, args, **kwargs) for gateway in stack.gateways]


def assert_denied(frames: list[dict]) -> None:
    for frame in frames:
        assert {k: v for k, v in frame.items() if k != "request_id"} == DENIED, frame


def results(frames: list[dict]) -> list:
    assert all(f["success"] is True for f in frames), frames
    return [f["result"] for f in frames]


def mark() -> str:
    return f"perm-{uuid.uuid4().hex[:10]}"


# ================================================================ check_permission


def test_false_allows_everyone_including_anonymous_callers(policy_stack):
    assert results(on_every_gateway(policy_stack, "open", user="alice")) == ["open", "open"]
    assert results(on_every_gateway(policy_stack, "open", user=None)) == ["open", "open"]


def test_any_authenticated_allows_a_token_user_and_denies_an_anonymous_one(policy_stack):
    assert results(on_every_gateway(policy_stack, "members", user="zoe", roles=())) == ["members", "members"]
    assert_denied(on_every_gateway(policy_stack, "members", user=None))


def test_arg_rule_allows_only_the_user_named_by_the_argument(policy_stack):
    frames = on_every_gateway(policy_stack, "owned", {"user_id": "alice", "note": "x"}, user="alice")
    assert results(frames) == [{"user_id": "alice", "note": "x"}] * 2
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": "alice", "note": "x"}, user="bob"))
    assert_denied(on_every_gateway(policy_stack, "owned", {"note": "x"}, user="alice"))  # no value at all
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": None, "note": "x"}, user="alice"))
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": "alice", "note": "x"}, user=None))


def test_arg_rule_is_strict_equality(policy_stack):
    """A string user id "123" is not the number 123 (the argument is declared ``any``, so
    nothing but the permission check can refuse it)."""
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": 123, "note": "x"}, user="123"))
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": ["123"], "note": "x"}, user="123"))
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": "123 ", "note": "x"}, user="123"))
    frames = on_every_gateway(policy_stack, "owned", {"user_id": "123", "note": "x"}, user="123")
    assert results(frames) == [{"user_id": "123", "note": "x"}] * 2
    assert_denied(on_every_gateway(policy_stack, "owned_map", {"a": {"user_id": 123}}, user="123"))
    assert results(on_every_gateway(policy_stack, "owned_map", {"a": {"user_id": "123"}}, user="123"))


def test_map_rule_a_truthy_top_level_value_wins(policy_stack):
    frames = on_every_gateway(policy_stack, "owned_map", {"user_id": "alice", "a": {"user_id": "mallory"}})
    assert results(frames) == [{"user_id": "alice", "a": {"user_id": "mallory"}, "b": None}] * 2
    assert_denied(on_every_gateway(policy_stack, "owned_map", {"user_id": "mallory", "a": {"user_id": "alice"}}))


@pytest.mark.parametrize("top", [None, "", 0, False], ids=["null", "empty", "zero", "false"])
def test_map_rule_a_falsy_top_level_value_falls_back_to_a_nested_one(policy_stack, top):
    allowed = on_every_gateway(policy_stack, "owned_map", {"user_id": top, "b": {"user_id": "alice"}})
    assert [r["b"] for r in results(allowed)] == [{"user_id": "alice"}] * 2
    assert_denied(on_every_gateway(policy_stack, "owned_map", {"user_id": top, "b": {"user_id": "bob"}}))


def test_map_rule_takes_the_first_object_in_sorted_key_order_even_if_it_mismatches(policy_stack):
    # "a" sorts before "b" although the client sent "b" first: "a"'s value decides
    mismatch_first = {"b": {"user_id": "alice"}, "a": {"user_id": "mallory"}}
    assert_denied(on_every_gateway(policy_stack, "owned_map", mismatch_first))
    match_first = {"b": {"user_id": "mallory"}, "a": {"user_id": "alice"}}
    assert len(results(on_every_gateway(policy_stack, "owned_map", match_first))) == 2


def test_map_rule_skips_objects_without_the_key(policy_stack):
    frames = on_every_gateway(policy_stack, "owned_map", {"a": {"other": "alice"}, "b": {"user_id": "alice"}})
    assert len(results(frames)) == 2
    assert_denied(on_every_gateway(policy_stack, "owned_map", {"a": {"other": "alice"}, "b": {"user_id": "eve"}}))


def test_map_rule_does_not_search_deeper_than_one_level(policy_stack):
    assert_denied(on_every_gateway(policy_stack, "owned_map", {"a": {"inner": {"user_id": "alice"}}}))
    assert_denied(on_every_gateway(policy_stack, "owned_map", {"a": {"x": {"user_id": "alice"}}, "b": {"y": 1}}))
    assert_denied(on_every_gateway(policy_stack, "owned_map", {}))


def test_role_rule_allows_a_shared_role_from_the_token(policy_stack):
    assert results(on_every_gateway(policy_stack, "admins", roles=("admin",))) == ["admins"] * 2
    assert results(on_every_gateway(policy_stack, "ops_or_admins", roles=("viewer", "ops"))) == ["ops or admins"] * 2
    assert_denied(on_every_gateway(policy_stack, "admins", roles=("viewer", "ops")))
    assert_denied(on_every_gateway(policy_stack, "admins", roles=()))
    assert_denied(on_every_gateway(policy_stack, "admins", user=None))


def test_an_empty_role_list_never_allows(policy_stack):
    assert_denied(on_every_gateway(policy_stack, "nobody", roles=("admin", "ops", "")))
    assert_denied(on_every_gateway(policy_stack, "nobody", user=None))


def test_roles_and_user_id_in_the_request_change_nothing(policy_stack):
    claims = {"user_id": "alice", "roles": ["admin"], "user_roles": ["admin"]}
    assert_denied(on_every_gateway(policy_stack, "admins", {"roles": ["admin"]}, user="bob", roles=("viewer",),
                                   extra=claims))
    assert_denied(on_every_gateway(policy_stack, "owned", {"user_id": "alice", "note": "x"}, user="bob",
                                   roles=("admin",), extra=claims))
    # the other way round: the session user is allowed whatever the request claims
    frames = on_every_gateway(policy_stack, "owned", {"user_id": "alice", "note": "x"}, user="alice",
                              extra={"user_id": "bob", "roles": []})
    assert results(frames) == [{"user_id": "alice", "note": "x"}] * 2
    assert_denied(on_every_gateway(policy_stack, "cb_session_admin", user="bob", roles=("viewer",), extra=claims))
    assert results(on_every_gateway(policy_stack, "cb_session_admin", roles=("admin",))) == ["session admin"] * 2


def test_denials_keep_the_connection_usable(policy_stack):
    with policy_stack.gateways[0].connect(user="bob", roles=()) as ws:
        for i in range(5):
            assert call(ws, rq("admins", request_id=i)) == {**DENIED, "request_id": i}
        assert call(ws, rq("open", request_id="after"))["result"] == "open"


# ============================================================= permission_callback


def test_a_callback_returning_true_allows_and_runs_on_the_worker(policy_stack):
    name = mark()
    assert results(on_every_gateway(policy_stack, "cb_true", {"mark": name}, roles=())) == ["allowed"] * 2
    assert int(policy_stack.redis.get(f"{name}:callback_pid")) == policy_stack.worker.pid
    assert int(policy_stack.redis.get(f"{name}:ran")) == 2


@pytest.mark.parametrize("request_type", ["cb_false", "cb_one", "cb_yes", "cb_raises"],
                         ids=["false", "one", "yes", "raises"])
def test_a_callback_allows_only_with_exactly_true(policy_stack, request_type):
    name = mark()
    assert_denied(on_every_gateway(policy_stack, request_type, {"mark": name}, roles=("admin",)))
    assert policy_stack.redis.get(f"{name}:ran") is None  # the function never ran


def test_a_callback_slower_than_hook_timeout_denies_without_waiting_for_it(policy_stack):
    name = mark()
    started = time.monotonic()
    frame = ask(policy_stack.gateways[0], "cb_slow", {"mark": name}, roles=("admin",))
    elapsed = time.monotonic() - started
    assert_denied([frame])
    assert elapsed < 1.8, f"answered after {elapsed:.2f} s: the 300 ms hook_timeout was not honoured"
    assert policy_stack.redis.get(f"{name}:ran") is None


def test_a_callback_denial_is_not_retried(policy_stack):
    """``cb_false`` has ``retry={"all_nodes": 2}``: a denial is final, the callback ran once."""
    name = mark()
    assert_denied([ask(policy_stack.gateways[1], "cb_false", {"mark": name})])
    assert int(policy_stack.redis.get(f"{name}:callback_calls")) == 1


def test_a_callback_denial_of_an_async_call_is_its_one_terminal_error(policy_stack):
    name = mark()
    with policy_stack.gateways[0].connect() as ws:
        ws.send(json.dumps(rq("cb_async", {"mark": name}, request_id="a")))
        frames = frames_until_terminal(ws)
    assert frames[-1] == {**DENIED, "request_id": "a"}
    assert all(f["success"] for f in frames[:-1]) and len(frames) <= 2  # at most the ack before it
    assert policy_stack.redis.get(f"{name}:ran") is None


def test_a_callback_takes_precedence_over_check_permission(policy_stack):
    """``cb_over_role`` also says ``{"role": ["admin"]}``: the gateway does not apply it."""
    assert results(on_every_gateway(policy_stack, "cb_over_role", roles=("viewer",))) == ["callback wins"] * 2


def test_a_callback_sees_the_arguments_the_before_hook_returned(policy_stack):
    """The before hook sets ``owner`` to the caller; the callback allows only that."""
    frames = on_every_gateway(policy_stack, "cb_after_before", {"owner": "mallory"}, user="carol")
    assert results(frames) == [{"owner": "carol"}] * 2
    assert results(on_every_gateway(policy_stack, "cb_after_before", {}, user="dan")) == [{"owner": "dan"}] * 2


def test_callback_denials_do_not_trip_the_breakers(policy_stack):
    """More worker-side denials than any default breaker threshold (worker 5, service 10),
    then an allowed call of the same service still runs."""
    with policy_stack.gateways[0].connect() as ws:
        for i in range(12):
            assert call(ws, rq("cb_false", {"mark": None}, request_id=i)) == {**DENIED, "request_id": i}
        assert call(ws, rq("cb_true", {"mark": None}, request_id="ok"))["result"] == "allowed"
    assert ask(policy_stack.gateways[1], "cb_true", {"mark": None})["result"] == "allowed"

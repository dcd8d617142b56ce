"""gateway_app.hooks.GatewayHooks: the gateway's before and after hooks, in registration
order, with the function-level hooks' contract and GENAPI_HOOK_TIMEOUT_MS as the bound."""

from __future__ import annotations

import threading

import pytest

from gateway_app.errors import Rejected
from gateway_app.hooks import GatewayHooks
from workers.errors import GenApiError

HERE = "tests.unit.test_gateway_hooks"
INFO = {"request_id": "r1", "user_id": "alice", "device_id": None, "roles": [], "service": "svc",
        "request_type": "rt", "version": None}


# module-level hooks, loaded by name (keep no state: this module may be imported twice)


def add_user(info, args):
    return {**args, "user": info["user_id"]}


def double_result(info, result):
    return result * 2


def quota(info, args):
    raise GenApiError("Quota exceeded")


@pytest.fixture
def release():
    event = threading.Event()
    yield event
    event.set()


def rejection_of(gateway_hooks: GatewayHooks, args=None) -> Rejected:
    with pytest.raises(Rejected) as caught:
        gateway_hooks.run_before(INFO, args or {})
    return caught.value


# ------------------------------------------------------------------ before


def test_no_hooks_keep_args_and_result():
    h = GatewayHooks(1000)
    args = {"x": 1}
    assert h.run_before(INFO, args) is args
    assert h.run_after(INFO, "result") == "result"


def test_before_dict_replaces_the_args():
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: {**args, "y": 2})
    assert h.run_before(INFO, {"x": 1}) == {"x": 1, "y": 2}


@pytest.mark.parametrize("outcome", [None, True])
def test_before_none_or_true_keeps_the_args(outcome):
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: outcome)
    args = {"x": 1}
    assert h.run_before(INFO, args) is args


def test_before_hooks_run_in_registration_order_each_seeing_the_last_args():
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: {"trail": [*args["trail"], "first"]})
    h.before.append(lambda info, args: {"trail": [*args["trail"], "second"]})
    assert h.run_before(INFO, {"trail": []}) == {"trail": ["first", "second"]}


def test_before_gets_the_request_info():
    seen = []
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: seen.append(info))
    h.run_before(INFO, {})
    assert seen == [INFO]


def test_before_false_rejects():
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: False)
    rejection = rejection_of(h)
    assert (rejection.error, rejection.can_retry, rejection.code) == ('hook rejected: "rejected"', False,
                                                                      "hook_rejected")


def test_before_genapi_error_rejects_with_its_reason():
    h = GatewayHooks(1000)
    h.before.append(quota)
    assert rejection_of(h).error == 'hook rejected: "Quota exceeded"'


def test_before_other_exception_rejects_with_type_and_text():
    h = GatewayHooks(1000)

    def broken(info, args):
        raise ValueError("boom")

    h.before.append(broken)
    assert rejection_of(h).error == 'hook rejected: "ValueError: boom"'


def test_before_timeout_rejects(release):
    h = GatewayHooks(60)
    h.before.append(lambda info, args: release.wait(5))
    assert rejection_of(h).error == 'hook rejected: "hook timed out after 60ms"'


def test_a_rejection_stops_the_later_hooks():
    ran = []
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: False)
    h.before.append(lambda info, args: ran.append("second"))
    rejection_of(h)
    assert ran == []


def test_timeout_is_read_when_the_hooks_run(release):
    h = GatewayHooks(5000)
    h.before.append(lambda info, args: release.wait(5))
    h.timeout_ms = 40  # as Gateway.init_app sets it from GENAPI_HOOK_TIMEOUT_MS
    assert rejection_of(h).error == 'hook rejected: "hook timed out after 40ms"'


# ------------------------------------------------------------------ after


def test_after_replaces_the_result():
    h = GatewayHooks(1000)
    h.after.append(lambda info, result: {"wrapped": result})
    assert h.run_after(INFO, 5) == {"wrapped": 5}


def test_after_hooks_chain_in_registration_order():
    h = GatewayHooks(1000)
    h.after.append(lambda info, result: [*result, "first"])
    h.after.append(lambda info, result: [*result, "second"])
    assert h.run_after(INFO, []) == ["first", "second"]


def test_a_failing_after_hook_keeps_its_input_and_the_next_one_still_runs():
    h = GatewayHooks(1000)

    def broken(info, result):
        raise RuntimeError("x")

    h.after.append(lambda info, result: result + 1)
    h.after.append(broken)
    h.after.append(lambda info, result: result * 10)
    assert h.run_after(INFO, 1) == 20


def test_after_timeout_keeps_the_result(release):
    h = GatewayHooks(60)
    h.after.append(lambda info, result: release.wait(5))
    assert h.run_after(INFO, {"v": 1}) == {"v": 1}


# ------------------------------------------------------------------ load


def test_load_by_name_appends_after_the_registered_ones():
    h = GatewayHooks(1000)
    h.before.append(lambda info, args: {**args, "first": True})
    h.load(before=(f"{HERE}:add_user",), after=(f"{HERE}:double_result",))
    assert len(h.before) == 2 and len(h.after) == 1
    assert h.run_before(INFO, {}) == {"first": True, "user": "alice"}
    assert h.run_after(INFO, 21) == 42


def test_load_several_keeps_their_order():
    h = GatewayHooks(1000)
    h.load(before=(f"{HERE}:add_user", f"{HERE}:quota"))
    assert [hook.__name__ for hook in h.before] == ["add_user", "quota"]
    assert rejection_of(h).error == 'hook rejected: "Quota exceeded"'


def test_load_nothing():
    h = GatewayHooks(1000)
    h.load()
    assert h.before == [] and h.after == []


def test_load_bad_names_raise():
    h = GatewayHooks(1000)
    with pytest.raises(ImportError):
        h.load(before=("no_such_module_xyz:hook",))
    with pytest.raises(AttributeError):
        h.load(after=(f"{HERE}:no_such_hook",))
    with pytest.raises(TypeError, match="not callable"):
        h.load(before=(f"{HERE}:HERE",))

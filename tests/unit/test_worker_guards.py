"""workers.runtime.Guards: a function's before hook, permission callback and after hook,
named ``module:function`` as ``@api.function`` stores them.

The hooks below are loaded by name (a second import of this module), so they keep no
module state: what they record goes into the request info the test passes in.
"""

from __future__ import annotations

import threading

import pytest

from workers import hooks
from workers.errors import GenApiError
from workers.funconfig import load_funconfig
from workers.protocol import PERMISSION_DENIED, reply_error, reply_rejected, reply_result
from workers.runtime import Guards

HERE = "tests.unit.test_worker_guards"


# ------------------------------------------------------------------ hooks, by name


def stamp(info, args, *extra):
    info["log"].append("before")
    return {**args, "stamped": list(extra)}


def keep(info, args):
    info["log"].append("before")
    return None


def refuse(info, args):
    info["log"].append("before")
    return False


def quota(info, args):
    info["log"].append("before")
    raise GenApiError("Quota exceeded")


def boom(info, *rest):
    raise ValueError("boom")


def slow(info, *rest):
    info["release"].wait(5)
    return True


def allow(info, args):
    info["log"].append(("callback", dict(args)))
    return True


def allow_stamped(info, args):
    info["log"].append("callback")
    return "stamped" in args


def deny(info, args):
    return False


def one(info, args):
    return 1


def yes(info, args):
    return "yes"


def nothing(info, args):
    return None


def wrap(info, result, *extra):
    info["log"].append("after")
    return {"wrapped": result, "extra": list(extra)}


# ------------------------------------------------------------------ helpers


def hook(name: str, *extra) -> dict:
    return {"callable": f"{HERE}:{name}", "args": list(extra)}


def guards(before=None, callback=None, after=None, hook_timeout=1000) -> Guards:
    data = {"service": "svc", "request_type": "rt", "hook_timeout": hook_timeout}
    if before:
        data["before_execute"] = before
    if callback:
        data["permission_callback"] = f"{HERE}:{callback}"
    if after:
        data["after_execute"] = after
    return Guards(load_funconfig(data))


@pytest.fixture
def info():
    """The request info the hooks get (and record into); releases slow hooks at teardown."""
    data = {"request_id": "r1", "user_id": "alice", "device_id": None, "roles": [], "service": "svc",
            "request_type": "rt", "version": None, "log": [], "release": threading.Event()}
    yield data
    data["release"].set()


# ------------------------------------------------------------------ truthiness


def test_no_hooks_is_falsy():
    assert not guards()


@pytest.mark.parametrize("kwargs", [{"before": hook("keep")}, {"callback": "allow"}, {"after": hook("wrap")}])
def test_any_hook_is_truthy(kwargs):
    assert guards(**kwargs)


# ------------------------------------------------------------------ admit


def test_admit_without_hooks_keeps_the_arguments(info):
    args = {"x": 1}
    assert guards().admit(info, args) is args


def test_admit_before_dict_replaces_the_arguments(info):
    assert guards(before=hook("stamp")).admit(info, {"x": 1}) == {"x": 1, "stamped": []}


def test_admit_before_gets_its_extra_args_appended(info):
    assert guards(before=hook("stamp", "a", 2)).admit(info, {"x": 1}) == {"x": 1, "stamped": ["a", 2]}


def test_admit_before_none_keeps_the_arguments(info):
    args = {"x": 1}
    assert guards(before=hook("keep")).admit(info, args) is args
    assert info["log"] == ["before"]


def test_admit_before_false_rejects_without_asking_the_callback(info):
    with pytest.raises(hooks.Rejection) as caught:
        guards(before=hook("refuse"), callback="allow").admit(info, {})
    assert str(caught.value) == 'hook rejected: "rejected"'
    assert info["log"] == ["before"]


def test_admit_before_genapi_error_rejects_with_its_reason(info):
    with pytest.raises(hooks.Rejection) as caught:
        guards(before=hook("quota")).admit(info, {})
    assert str(caught.value) == 'hook rejected: "Quota exceeded"'


def test_admit_before_exception_rejects_with_type_and_text(info):
    with pytest.raises(hooks.Rejection) as caught:
        guards(before=hook("boom")).admit(info, {})
    assert str(caught.value) == 'hook rejected: "ValueError: boom"'


def test_admit_before_timeout_uses_the_functions_hook_timeout(info):
    with pytest.raises(hooks.Rejection) as caught:
        guards(before=hook("slow"), hook_timeout=60).admit(info, {})
    assert str(caught.value) == 'hook rejected: "hook timed out after 60ms"'


def test_admit_callback_true_allows(info):
    args = {"x": 1}
    assert guards(callback="allow").admit(info, args) is args
    assert info["log"] == [("callback", {"x": 1})]


def test_admit_callback_runs_after_before_and_sees_its_arguments(info):
    assert guards(before=hook("stamp"), callback="allow_stamped").admit(info, {}) == {"stamped": []}
    assert info["log"] == ["before", "callback"]


@pytest.mark.parametrize("callback", ["deny", "one", "yes", "nothing", "boom"])
def test_admit_callback_not_exactly_true_denies(info, callback):
    with pytest.raises(hooks.Rejection) as caught:
        guards(callback=callback).admit(info, {})
    assert str(caught.value) == PERMISSION_DENIED == "Permission denied"


def test_admit_callback_timeout_denies(info):
    with pytest.raises(hooks.Rejection) as caught:
        guards(callback="slow", hook_timeout=60).admit(info, {})
    assert str(caught.value) == PERMISSION_DENIED


def test_admit_callback_denial_after_a_before_that_rewrote_args(info):
    with pytest.raises(hooks.Rejection, match="^Permission denied$"):
        guards(before=hook("keep"), callback="allow_stamped").admit(info, {})
    assert info["log"] == ["before", "callback"]


# ------------------------------------------------------------------ finish


def test_finish_after_replaces_a_result(info):
    message = reply_result("ref", 5, "n1")
    finished = guards(after=hook("wrap", "x")).finish(info, message)
    assert finished == {**message, "data": {"wrapped": 5, "extra": ["x"]}}
    assert message["data"] == 5  # the original message is left alone


def test_finish_without_an_after_hook_returns_the_message(info):
    message = reply_result("ref", 5, "n1")
    assert guards(before=hook("keep")).finish(info, message) is message


@pytest.mark.parametrize("message", [reply_error("ref", "ValueError: x", "n1", unexpected=True),
                                     reply_error("ref", "Quota", "n1"),
                                     reply_rejected("ref", "Permission denied", "n1")])
def test_finish_leaves_errors_and_rejections_alone(info, message):
    assert guards(after=hook("wrap")).finish(info, message) == message
    assert info["log"] == []


def test_finish_after_raising_keeps_the_original_result(info):
    message = reply_result("ref", {"v": 1}, "n1")
    assert guards(after=hook("boom")).finish(info, message) == message


def test_finish_after_timing_out_keeps_the_original_result(info):
    message = reply_result("ref", {"v": 1}, "n1")
    assert guards(after=hook("slow"), hook_timeout=60).finish(info, message) == message

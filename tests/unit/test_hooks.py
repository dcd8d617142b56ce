"""workers.hooks: loading hooks, running them within a bound, and the before / after /
permission-callback contracts."""

from __future__ import annotations

import json
import os
import threading

import pytest

from workers import hooks
from workers.errors import GenApiError

INFO = {"request_id": "r1", "user_id": "alice", "device_id": None, "roles": ["user"], "service": "svc",
        "request_type": "rt", "version": None}


@pytest.fixture
def release():
    """An event a slow hook waits on; set at teardown so abandoned hook threads end."""
    event = threading.Event()
    yield event
    event.set()


def slow(release: threading.Event):
    def hook(*_args):
        release.wait(5)
        return True
    return hook


def raising(exc: BaseException):
    def hook(*_args):
        raise exc
    return hook


def returning(value):
    return lambda *_args: value


# ------------------------------------------------------------------ run_bounded


def test_run_bounded_returns_the_value():
    assert hooks.run_bounded(lambda a, b: a + b, (1, 2), 1000) == 3


def test_run_bounded_returns_none_from_a_hook_returning_nothing():
    assert hooks.run_bounded(lambda: None, (), 1000) is None


def test_run_bounded_reraises_the_hooks_exception():
    error = KeyError("missing")
    with pytest.raises(KeyError) as caught:
        hooks.run_bounded(raising(error), (), 1000)
    assert caught.value is error


def test_run_bounded_times_out(release):
    with pytest.raises(hooks.HookTimeout, match="^hook timed out after 50ms$"):
        hooks.run_bounded(slow(release), (), 50)


# ------------------------------------------------------------------ before


def test_before_dict_replaces_the_arguments():
    assert hooks.before((returning({"x": 2}), ()), INFO, {"x": 1}, 1000) == {"x": 2}


@pytest.mark.parametrize("outcome", [None, True])
def test_before_none_or_true_keeps_the_arguments(outcome):
    args = {"x": 1}
    assert hooks.before((returning(outcome), ()), INFO, args, 1000) is args


def test_before_other_return_value_keeps_the_arguments():
    args = {"x": 1}
    assert hooks.before((returning(["not", "a", "dict"]), ()), INFO, args, 1000) is args


def test_before_receives_request_info_and_args():
    seen = []

    def hook(info, args):
        seen.append((info, args))

    hooks.before((hook, ()), INFO, {"x": 1}, 1000)
    assert seen == [(INFO, {"x": 1})]


def test_before_false_rejects_with_rejected():
    with pytest.raises(hooks.Rejection) as caught:
        hooks.before((returning(False), ()), INFO, {}, 1000)
    assert str(caught.value) == 'hook rejected: "rejected"'


def test_before_genapi_error_rejects_with_its_reason():
    with pytest.raises(hooks.Rejection) as caught:
        hooks.before((raising(GenApiError("Quota exceeded")), ()), INFO, {}, 1000)
    assert str(caught.value) == 'hook rejected: "Quota exceeded"'


def test_before_reason_is_json_quoted_and_keeps_non_ascii():
    with pytest.raises(hooks.Rejection) as caught:
        hooks.before((raising(GenApiError('say "no" – déjà')), ()), INFO, {}, 1000)
    assert str(caught.value) == 'hook rejected: "say \\"no\\" – déjà"'


def test_before_other_exception_names_type_and_text():
    with pytest.raises(hooks.Rejection) as caught:
        hooks.before((raising(ValueError("boom")), ()), INFO, {}, 1000)
    assert str(caught.value) == 'hook rejected: "ValueError: boom"'
    assert "ValueError" in str(caught.value) and "boom" in str(caught.value)


def test_before_exception_without_text_names_its_type():
    with pytest.raises(hooks.Rejection) as caught:
        hooks.before((raising(RuntimeError()), ()), INFO, {}, 1000)
    assert str(caught.value) == 'hook rejected: "RuntimeError"'


def test_before_timeout_rejects(release):
    with pytest.raises(hooks.Rejection) as caught:
        hooks.before((slow(release), ()), INFO, {}, 100)
    assert "hook timed out after 100ms" in str(caught.value)
    assert str(caught.value) == 'hook rejected: "hook timed out after 100ms"'


def test_before_extra_args_are_appended():
    seen = []

    def hook(info, args, *extra):
        seen.append(extra)
        return {**args, "extra": list(extra)}

    assert hooks.before((hook, ("a", 2)), INFO, {"x": 1}, 1000) == {"x": 1, "extra": ["a", 2]}
    assert seen == [("a", 2)]


# ------------------------------------------------------------------ after


def test_after_return_value_replaces_the_result():
    assert hooks.after((lambda info, result: {"wrapped": result}, ()), INFO, 5, 1000) == {"wrapped": 5}


def test_after_returning_none_replaces_the_result_with_none():
    assert hooks.after((returning(None), ()), INFO, 5, 1000) is None


def test_after_exception_keeps_the_original_result():
    result = {"value": 1}
    assert hooks.after((raising(ValueError("boom")), ()), INFO, result, 1000) is result


def test_after_genapi_error_keeps_the_original_result():
    assert hooks.after((raising(GenApiError("no")), ()), INFO, "orig", 1000) == "orig"


def test_after_timeout_keeps_the_original_result(release):
    assert hooks.after((slow(release), ()), INFO, "orig", 50) == "orig"


def test_after_extra_args_are_appended():
    def hook(info, result, *extra):
        return [result, *extra]

    assert hooks.after((hook, ("x", 3)), INFO, 1, 1000) == [1, "x", 3]


# ------------------------------------------------------------------ permitted


def test_permitted_exactly_true_allows():
    assert hooks.permitted(returning(True), INFO, {}, 1000) is True


@pytest.mark.parametrize("verdict", [False, 1, 1.0, "yes", "True", None, {"ok": True}, [True]])
def test_permitted_anything_but_true_denies(verdict):
    assert hooks.permitted(returning(verdict), INFO, {}, 1000) is False


@pytest.mark.parametrize("exc", [ValueError("boom"), GenApiError("nope"), PermissionError()])
def test_permitted_raising_denies(exc):
    assert hooks.permitted(raising(exc), INFO, {}, 1000) is False


def test_permitted_timeout_denies(release):
    assert hooks.permitted(slow(release), INFO, {}, 50) is False


def test_permitted_receives_request_info_and_args():
    def callback(info, args):
        return info["user_id"] == args.get("owner")

    assert hooks.permitted(callback, INFO, {"owner": "alice"}, 1000) is True
    assert hooks.permitted(callback, INFO, {"owner": "bob"}, 1000) is False


# ------------------------------------------------------------------ resolve / load


def test_resolve_none():
    assert hooks.resolve(None) is None


def test_resolve_callable():
    def hook(info, args):
        return None

    assert hooks.resolve(hook) == (hook, ())


def test_resolve_module_function_string():
    assert hooks.resolve("json:dumps") == (json.dumps, ())


def test_resolve_dotted_attribute_after_the_colon():
    assert hooks.resolve("json:JSONEncoder.encode") == (json.JSONEncoder.encode, ())


def test_resolve_callable_and_args_object():
    assert hooks.resolve({"callable": "os.path:join", "args": ["a", 1]}) == (os.path.join, ("a", 1))


@pytest.mark.parametrize("spec", [{"callable": "json:dumps"}, {"callable": "json:dumps", "args": []},
                                  {"callable": "json:dumps", "args": None}])
def test_resolve_object_without_args_has_no_extra(spec):
    assert hooks.resolve(spec) == (json.dumps, ())


def test_resolve_object_with_a_callable():
    def hook(info, args, *extra):
        return {"extra": list(extra)}

    resolved = hooks.resolve({"callable": hook, "args": [7]})
    assert resolved == (hook, (7,))
    assert hooks.before(resolved, INFO, {}, 1000) == {"extra": [7]}


def echo_extra(info, args, *extra):
    """A module-level hook, referenced by name below."""
    return {"user": info["user_id"], "args": args, "extra": list(extra)}


def test_resolved_module_function_gets_the_extra_args_appended():
    resolved = hooks.resolve({"callable": "tests.unit.test_hooks:echo_extra", "args": [1, "two"]})
    assert resolved[1] == (1, "two")
    assert hooks.before(resolved, INFO, {"x": 1}, 1000) == {"user": "alice", "args": {"x": 1}, "extra": [1, "two"]}


def test_load_not_callable_refused():
    with pytest.raises(TypeError, match="os:sep is not callable"):
        hooks.load("os:sep")


def test_load_missing_module_or_attribute_raises():
    with pytest.raises(ImportError):
        hooks.load("no_such_module_xyz:f")
    with pytest.raises(AttributeError):
        hooks.load("json:no_such_function")

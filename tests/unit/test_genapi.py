"""workers.genapi: the @api.function decorator."""

from __future__ import annotations

import pytest

from workers.argtypes import parse_spec
from workers.errors import FunConfigError
from workers.funconfig import FunConfig
from workers.genapi import Function, GenApi, callable_path


def can_call(request, config):  # module level: referable as "module:qualname"
    return True


def before_hook(request, config):
    return request


def after_hook(request, result):
    return result


class Hooks:
    @staticmethod
    def before(request, config):
        return request


HERE = __name__


def test_request_type_defaults_to_function_name():
    api = GenApi("svc")

    @api.function(arg_types={"x": "num"})
    def double(x):
        return 2 * x

    assert double.genapi_config.request_type == "double"
    assert double.genapi_config.service == "svc"


def test_explicit_request_type_and_options():
    api = GenApi("svc")

    @api.function("get_user", arg_types={"user_id": "string"}, version="1.0.0", response_type="async",
                  timeout=7000)
    def fetch(user_id):
        return {"id": user_id}

    cfg = fetch.genapi_config
    assert isinstance(cfg, FunConfig)
    assert (cfg.request_type, cfg.version, cfg.response_type, cfg.timeout) == ("get_user", "1.0.0", "async", 7000)
    assert cfg.arg_types == {"user_id": parse_spec("user_id", "string")}
    assert cfg.arg_orders == ("user_id",)


def test_bare_decorator():
    api = GenApi("svc")

    @api.function
    def ping():
        return "pong"

    assert ping() == "pong"
    assert ping.genapi_config.request_type == "ping"
    assert ping.genapi_config.arg_types == {}
    assert len(api) == 1


def test_function_returned_unchanged_and_registered():
    api = GenApi("svc")

    def add(a, b):
        return a + b

    decorated = api.function("add", arg_types={"a": "num", "b": "num"})(add)
    assert decorated is add
    assert add(1, 2) == 3
    assert add.genapi_config.task_name == "svc.add"
    functions = list(api)
    assert functions == [Function(add.genapi_config, add)]
    assert len(api) == 1


def test_unknown_keyword_option_rejected():
    api = GenApi("svc")
    with pytest.raises(FunConfigError) as info:
        api.function("f", nodes=["a"])
    assert "unknown option nodes" in str(info.value)
    with pytest.raises(FunConfigError, match="unknown options mfa, service"):
        api.function("f", service="other", mfa=1)


def test_invalid_config_fails_at_decoration_naming_the_field():
    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="timeout: "):
        @api.function(timeout=5)
        def f():
            return None
    assert len(api) == 0


@pytest.mark.parametrize("name", ["gateway", "relay", "", "bad name", None])
def test_invalid_service_name(name):
    with pytest.raises(FunConfigError, match="service"):
        GenApi(name)


def test_instances_are_remembered_in_order():
    first, second = GenApi("svc_one"), GenApi("svc_two")
    instances = GenApi.instances()
    assert instances.index(first) < instances.index(second)
    assert "svc_one" in repr(first)


# -------------------------------------------------------------------- callables


def test_permission_callback_callable_converted():
    api = GenApi("svc")

    @api.function(permission_callback=can_call)
    def f():
        return None

    assert f.genapi_config.permission_callback == f"{HERE}:can_call"


def test_permission_callback_string_kept():
    api = GenApi("svc")

    @api.function(permission_callback="pkg.perm:check")
    def f():
        return None

    assert f.genapi_config.permission_callback == "pkg.perm:check"


@pytest.mark.parametrize("hook", ["before_execute", "after_execute"])
def test_hook_callable_converted(hook):
    api = GenApi("svc")

    @api.function(**{hook: before_hook})
    def f():
        return None

    assert getattr(f.genapi_config, hook) == {"callable": f"{HERE}:before_hook", "args": []}


@pytest.mark.parametrize("hook", ["before_execute", "after_execute"])
def test_hook_string_converted(hook):
    api = GenApi("svc")

    @api.function(**{hook: "pkg.hooks:run"})
    def f():
        return None

    assert getattr(f.genapi_config, hook) == {"callable": "pkg.hooks:run", "args": []}


def test_hook_dict_with_callable_object():
    api = GenApi("svc")

    @api.function(before_execute={"callable": before_hook, "args": [1, 2]}, after_execute=after_hook)
    def f():
        return None

    assert f.genapi_config.before_execute == {"callable": f"{HERE}:before_hook", "args": [1, 2]}
    assert f.genapi_config.after_execute == {"callable": f"{HERE}:after_hook", "args": []}


def test_static_method_path():
    assert callable_path(Hooks.before) == f"{HERE}:Hooks.before"


def test_hook_none_kept():
    api = GenApi("svc")

    @api.function(before_execute=None)
    def f():
        return None

    assert f.genapi_config.before_execute is None


@pytest.mark.parametrize("option", ["permission_callback", "before_execute", "after_execute"])
def test_lambda_rejected(option):
    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="cannot be referenced by name"):
        api.function(**{option: lambda *a: True})(before_hook)


@pytest.mark.parametrize("option", ["permission_callback", "before_execute", "after_execute"])
def test_nested_function_rejected(option):
    def inner(*args):
        return True

    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="cannot be referenced by name"):
        api.function(**{option: inner})(before_hook)


def test_nested_function_in_hook_dict_rejected():
    def inner(*args):
        return True

    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="cannot be referenced by name"):
        api.function(before_execute={"callable": inner})(before_hook)


def test_callable_instance_rejected():
    class Check:
        def __call__(self, *args):
            return True

    with pytest.raises(FunConfigError):
        callable_path(Check())


# --------------------------------------------------------------- arg_orders / signature


def test_arg_orders_inferred_from_signature():
    api = GenApi("svc")

    @api.function(arg_types={"b": "num", "a": "string", "c": "boolean"})
    def f(a, c, b):
        return None

    assert f.genapi_config.arg_orders == ("a", "c", "b")


def test_explicit_arg_orders_win():
    api = GenApi("svc")

    @api.function(arg_types={"a": "num", "b": "num"}, arg_orders=["b", "a"])
    def f(x, y):
        return None

    assert f.genapi_config.arg_orders == ("b", "a")


def test_arg_orders_cannot_be_inferred():
    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="arg_orders: "):
        @api.function(arg_types={"a": "num", "b": "num"})
        def f(x, y):
            return None


def test_arg_orders_map():
    api = GenApi("svc")

    @api.function(arg_types={"a": "num", "b": "num"}, arg_orders="map")
    def f(args):
        return args

    assert f.genapi_config.arg_orders == "map"


@pytest.mark.parametrize(
    ("options", "func"),
    [
        ({"arg_types": {"a": "num", "b": "num"}, "arg_orders": ["a", "b"]}, lambda a: None),
        ({"arg_types": {"a": "num"}}, lambda: None),
        ({"arg_types": {}}, lambda a: None),  # explicit: no arguments (without arg_types, a is derived)
        ({"arg_types": {"a": "num", "b": "num"}, "arg_orders": "map"}, lambda a, b: None),
        ({"arg_types": {"a": "num"}, "arg_orders": "map"}, lambda: None),
        ({"arg_types": {"a": "num"}, "request_info": True}, lambda a: None),
        ({"arg_types": {}, "request_info": True}, lambda *, info: None),
        ({"arg_types": {"a": "num"}}, lambda *, a: None),
    ],
    ids=["too-few", "none-for-one", "required-extra", "map-takes-one", "map-none", "no-request-info",
         "wrong-kwarg", "keyword-only"],
)
def test_signature_mismatch_fails_at_decoration(options, func):
    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="the function cannot be called with"):
        api.function("f", **options)(func)
    assert len(api) == 0


@pytest.mark.parametrize(
    ("options", "func"),
    [
        ({"arg_types": {"a": "num", "b": "num"}, "arg_orders": ["a", "b"]}, lambda *args: None),
        ({"arg_types": {"a": "num"}}, lambda a, b=1: None),
        ({"arg_types": {"a": "num"}, "request_info": True}, lambda a, request_info: None),
        ({"arg_types": {}, "request_info": True}, lambda **kw: None),  # without arg_types: **kw refused
        ({"arg_types": {"a": "num", "b": "num"}, "arg_orders": "map"}, lambda args, *, opt=None: None),
    ],
)
def test_signature_compatible(options, func):
    api = GenApi("svc")
    assert api.function("f", **options)(func) is func


# ------------------------------------------------------------------------ stream


def test_stream_requires_generator():
    api = GenApi("svc")
    with pytest.raises(FunConfigError, match="must be a generator"):
        @api.function(response_type="stream")
        def not_a_generator():
            return [1, 2]


def test_stream_generator_accepted():
    api = GenApi("svc")

    @api.function(response_type="stream", arg_types={"n": "num"})
    def count(n):
        yield from range(n)

    assert count.genapi_config.response_type == "stream"
    assert list(count(3)) == [0, 1, 2]


# --------------------------------------------------------------------- duplicates


def test_duplicate_request_type_and_version_rejected():
    api = GenApi("svc")

    @api.function("f", version="1.0.0")
    def one():
        return 1

    @api.function("f", version="2.0.0")
    def two():
        return 2

    @api.function("f")
    def unversioned():
        return 0

    with pytest.raises(FunConfigError, match=r"svc\.f version 1\.0\.0 is registered twice"):
        @api.function("f", version="1.0.0")
        def again():
            return 1

    with pytest.raises(FunConfigError, match=r"version \(none\) is registered twice"):
        @api.function("f")
        def again_unversioned():
            return 1

    assert len(api) == 3
    assert [fn.func for fn in api] == [one, two, unversioned]


def test_same_request_type_in_two_services_is_fine():
    a, b = GenApi("svc_a"), GenApi("svc_b")

    def f():
        return None

    a.function("f")(f)
    b.function("f")(f)
    assert len(a) == len(b) == 1


def test_request_type_may_be_a_keyword():
    api = GenApi("kw_service")

    @api.function(request_type="renamed")
    def original():
        return 1

    assert original.genapi_config.request_type == "renamed"
    with pytest.raises(FunConfigError, match="request_type given twice"):
        api.function("a", request_type="b")

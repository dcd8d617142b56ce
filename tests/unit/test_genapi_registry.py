"""workers.genapi and workers.funconfig: config_version, push=False, the hard denylist at
decoration, and check_permission keys inside map arguments."""

from __future__ import annotations

import os
import pickle
import subprocess

import pytest

from workers import pushconfig
from workers.errors import FunConfigError
from workers.funconfig import load_funconfig
from workers.genapi import GenApi


@pytest.fixture(autouse=True)
def _forget_instances(monkeypatch):
    """GenApi remembers every instance; keep this module's out of the global list."""
    monkeypatch.setattr(GenApi, "_instances", [])


def two_functions(api: GenApi, reverse: bool = False) -> GenApi:
    def first(x):
        return x

    def second(y):
        return y

    declarations = [(first, {"arg_types": {"x": "string"}}), (second, {"arg_types": {"y": "num"}, "timeout": 900})]
    for func, options in reversed(declarations) if reverse else declarations:
        api.function(**options)(func)
    return api


# ------------------------------------------------------------- config_version


def test_config_version_defaults_to_the_hash_of_the_configs():
    api = two_functions(GenApi("svc"))
    assert api.config_version == pushconfig.config_version(api.configs())
    assert len(api.config_version) == 16


def test_default_config_version_is_stable_across_instances_and_declaration_order():
    assert two_functions(GenApi("svc")).config_version == two_functions(GenApi("svc"), reverse=True).config_version


def test_default_config_version_follows_the_functions():
    api = GenApi("svc")
    empty = api.config_version

    @api.function(arg_types={"x": "string"})
    def f(x):
        return x

    one = api.config_version
    assert one != empty

    @api.function("f", arg_types={"x": "string"}, version="2.0.0")
    def f2(x):
        return x

    assert api.config_version not in (empty, one)


def test_default_config_version_changes_when_a_config_changes():
    a, b = GenApi("svc"), GenApi("svc")
    a.function("f", timeout=1000)(lambda: None)
    b.function("f", timeout=2000)(lambda: None)
    assert a.config_version != b.config_version


def test_explicit_config_version_is_kept():
    api = two_functions(GenApi("svc", config_version="release-42"))
    assert api.config_version == "release-42"


@pytest.mark.parametrize("bad", ["", "   ", 0, 1.5, ["v1"]])
def test_empty_or_non_string_config_version_fails(bad):
    with pytest.raises(FunConfigError) as info:
        GenApi("svc", config_version=bad)
    assert str(info.value) == f"svc: config_version must be a non-empty string, got {bad!r}"
    assert GenApi.instances() == []


def test_push_flag():
    assert GenApi("svc").push is True
    assert GenApi("svc", push=False).push is False


def test_push_false_with_config_version():
    api = GenApi("pulled", config_version="v1", push=False)
    assert (api.service, api.config_version, api.push) == ("pulled", "v1", False)
    assert api in GenApi.instances()


def test_configs_lists_every_function_config():
    api = two_functions(GenApi("svc"))
    assert [c.request_type for c in api.configs()] == ["first", "second"]
    assert api.configs() == [f.config for f in api]


# ------------------------------------------------------------- reserved services


@pytest.mark.parametrize("service", ["celery", "gateway", "relay"])
def test_reserved_service_refused(service):
    with pytest.raises(FunConfigError) as info:
        GenApi(service)
    assert str(info.value) == \
        f"service {service!r} is reserved (the gateway's built-in services and Celery's own tasks)"


def test_celery_dotted_service_cannot_register_functions():
    api = GenApi("celery.tasks")
    with pytest.raises(FunConfigError) as info:
        api.function("f")(lambda: None)
    assert str(info.value) == "celery.tasks.f: service 'celery.tasks' is reserved and can never be registered"
    assert len(api) == 0


# ------------------------------------------------------------ denied callables


@pytest.mark.parametrize("option, value, named", [
    ("before_execute", "os:system", "os:system"),
    ("after_execute", "subprocess:run", "subprocess:run"),
    ("permission_callback", "posix:system", "posix:system"),
    ("before_execute", {"callable": "_pickle:loads", "args": []}, "_pickle:loads"),
    ("after_execute", {"callable": "os.path:join", "args": [1]}, "os.path:join"),
    ("before_execute", os.system, f"{os.system.__module__}:system"),
    ("after_execute", subprocess.run, "subprocess:run"),
    ("permission_callback", pickle.loads, f"{pickle.loads.__module__}:loads"),
    ("before_execute", {"callable": os.system, "args": []}, f"{os.system.__module__}:system"),
])
def test_denied_callable_fails_at_decoration(option, value, named):
    api = GenApi("svc")
    with pytest.raises(FunConfigError) as info:
        @api.function("f", version="1.0.0", **{option: value})
        def f():
            return None
    assert str(info.value) == f"svc.f@1.0.0: callable {named} is in a module that can never be registered"
    assert len(api) == 0


def test_every_denied_callable_is_named():
    api = GenApi("svc")
    with pytest.raises(FunConfigError) as info:
        api.function("f", permission_callback="sys:exit", before_execute="json:dumps",
                     after_execute="shutil:rmtree")(lambda: None)
    assert str(info.value) == "svc.f: callable sys:exit, shutil:rmtree is in a module that can never be registered"


def test_harmless_callables_register():
    api = GenApi("svc")

    @api.function("f", before_execute="json:dumps", after_execute={"callable": "myapp.hooks:after", "args": []},
                  permission_callback="myapp.auth:can")
    def f():
        return None

    assert f.genapi_config.before_execute == {"callable": "json:dumps", "args": []}
    assert len(api) == 1


# --------------------------------------------- check_permission inside map args


def map_config(arg_types: dict, **fields):
    return load_funconfig({"service": "users", "request_type": "mine", "arg_types": arg_types,
                           "check_permission": {"arg": "user_id"}, **fields})


@pytest.mark.parametrize("arg_types", [
    {"filter": "map"},
    {"filter": {"type": "map"}},
    {"filter": {"type": "map", "accept": ["user_id", "status"]}},
    {"filter": {"type": "map", "accept": ["user_id"], "required": ["user_id"]}},
    {"filter": "any"},
    {"name": "string", "filter": "map"},
    {"name": "string", "extra": "any"},
    {"narrow": {"type": "map", "accept": ["status"]}, "wide": "map"},
])
def test_map_function_permission_key_inside_a_map_argument_loads(arg_types):
    config = map_config(arg_types, arg_orders="map")
    assert config.check_permission == {"arg": "user_id"}
    assert config.arg_orders == "map"


def test_map_function_declared_permission_argument_still_loads():
    assert map_config({"user_id": "string", "x": "num"}, arg_orders="map").arg_orders == "map"


@pytest.mark.parametrize("arg_types", [
    {"filter": {"type": "map", "accept": ["status"]}},
    {"filter": {"type": "map", "accept": ["status"], "required": ["status"]}},
    {"name": "string", "count": "num"},
    {"ids": "list_map"},
])
def test_map_function_without_a_map_that_can_hold_the_key_fails(arg_types):
    with pytest.raises(FunConfigError) as info:
        map_config(arg_types, arg_orders="map")
    assert str(info.value) == (
        "invalid function config users.mine: check_permission: check_permission names argument 'user_id', "
        "which arg_types does not declare, and no map argument can hold")


@pytest.mark.parametrize("arg_types, arg_orders", [
    ({"filter": "map"}, None),
    ({"filter": "map"}, ["filter"]),
    ({"filter": "any"}, ["filter"]),
    ({"filter": "map", "name": "string"}, ["name", "filter"]),
])
def test_list_ordered_function_still_needs_a_declared_argument(arg_types, arg_orders):
    fields = {} if arg_orders is None else {"arg_orders": arg_orders}
    with pytest.raises(FunConfigError) as info:
        map_config(arg_types, **fields)
    assert str(info.value) == (
        "invalid function config users.mine: check_permission: check_permission names argument 'user_id', "
        "which arg_types does not declare")


def test_genapi_map_function_with_permission_key_in_a_map_registers():
    api = GenApi("users")

    @api.function("mine", arg_types={"filter": "map"}, arg_orders="map", check_permission={"arg": "user_id"})
    def mine(args):
        return args

    assert mine.genapi_config.check_permission == {"arg": "user_id"}
    assert len(api) == 1


def test_genapi_list_function_with_undeclared_permission_key_fails():
    api = GenApi("users")
    with pytest.raises(FunConfigError, match="check_permission: check_permission names argument 'user_id'"):
        @api.function("mine", arg_types={"filter": "map"}, check_permission={"arg": "user_id"})
        def mine(filter):
            return filter
    assert len(api) == 0

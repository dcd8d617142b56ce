"""workers.funconfig: the FunConfig schema, field by field, and the JSON round trip."""

from __future__ import annotations

import pytest

from workers.argtypes import ArgSpec, parse_spec
from workers.errors import FunConfigError
from workers.funconfig import FunConfig, FunConfigSchema, load_funconfig

BASE = {"service": "users", "request_type": "get_user"}


def load(**fields) -> FunConfig:
    return load_funconfig({**BASE, **fields})


def fails(field: str, **fields) -> str:
    """Load an invalid config; the message names the function and the field."""
    with pytest.raises(FunConfigError) as info:
        load_funconfig({**BASE, **fields})
    message = str(info.value)
    assert f"{field}: " in message, message
    return message


def test_minimal_config_defaults():
    cfg = load()
    assert cfg == FunConfig(service="users", request_type="get_user")
    assert cfg.version is None
    assert cfg.arg_types == {}
    assert cfg.arg_orders == ()
    assert cfg.response_type == "sync"
    assert cfg.timeout == 5000
    assert cfg.choose_node_mode == "any"
    assert cfg.check_permission is False
    assert cfg.permission_callback is None
    assert cfg.retry is None
    assert cfg.before_execute is None and cfg.after_execute is None
    assert cfg.hook_timeout == 5000
    assert cfg.request_info is False
    assert cfg.disabled is False


def test_schema_load_returns_funconfig():
    assert isinstance(FunConfigSchema().load(dict(BASE)), FunConfig)


def test_error_message_names_the_function():
    message = fails("timeout", timeout=1)
    assert message.startswith("invalid function config users.get_user: timeout: ")


def test_several_errors_are_all_reported():
    message = fails("timeout", timeout=1, response_type="later")
    assert "response_type: " in message


@pytest.mark.parametrize("data", ["users", None, ["service"], 5])
def test_not_an_object(data):
    with pytest.raises(FunConfigError, match=r"invalid function config \?"):
        load_funconfig(data)


# ------------------------------------------------------------------ service / request_type


@pytest.mark.parametrize("value", ["users", "user_service", "a", "svc-2", "my.svc", "0abc", "_x"])
def test_service_valid(value):
    assert load(service=value).service == value


@pytest.mark.parametrize("value", ["", " ", "has space", "-lead", ".lead", "a/b", "é", None, 5, ["x"], True])
def test_service_invalid(value):
    fails("service", service=value)


def test_service_required():
    with pytest.raises(FunConfigError, match="service: "):
        load_funconfig({"request_type": "x"})


@pytest.mark.parametrize("value", ["gateway", "relay"])
def test_reserved_services(value):
    assert "reserved" in fails("service", service=value)


def test_reserved_names_only_exact():
    assert load(service="gateways").service == "gateways"
    assert load(service="Relay").service == "Relay"


@pytest.mark.parametrize("value", ["get_user", "a.b", "x-1", "9"])
def test_request_type_valid(value):
    assert load(request_type=value).request_type == value


@pytest.mark.parametrize("value", ["", "get user", None, 3, "-x", {"a": 1}])
def test_request_type_invalid(value):
    fails("request_type", request_type=value)


def test_request_type_required():
    with pytest.raises(FunConfigError, match="request_type: "):
        load_funconfig({"service": "users"})


# ------------------------------------------------------------------------- version


@pytest.mark.parametrize("value", ["1.0.0", "2", "v1", "beta", "1.0.0-rc.1", None])
def test_version_valid(value):
    assert load(version=value).version == value


@pytest.mark.parametrize("value", ["0.0.0", "", "   ", 1, 1.0, True, ["1.0.0"]])
def test_version_invalid(value):
    fails("version", version=value)


# ---------------------------------------------------------------- arg_types / orders


def test_arg_types_parsed_into_specs():
    cfg = load(arg_types={"name": "string", "age": {"type": "num", "default_value": 18}},
               arg_orders=["name", "age"])
    assert cfg.arg_types == {"name": parse_spec("name", "string"),
                             "age": parse_spec("age", {"type": "num", "default_value": 18})}
    assert all(isinstance(s, ArgSpec) for s in cfg.arg_types.values())
    assert cfg.arg_orders == ("name", "age")


@pytest.mark.parametrize("value", ["string", ["name"], 5, True])
def test_arg_types_must_be_object(value):
    assert "arg_types must be an object" in fails("arg_types", arg_types=value)


def test_arg_types_bad_spec_names_argument():
    message = fails("arg_types", arg_types={"age": "integer"})
    assert 'argument "age": unknown type' in message


def test_arg_types_bad_default_fails_at_load():
    message = fails("arg_types", arg_types={"age": {"type": "num", "default_value": "old"}})
    assert 'argument "age": default_value is invalid' in message


def test_arg_types_null_and_empty():
    assert load(arg_types=None).arg_types == {}
    assert load(arg_types={}).arg_types == {}


@pytest.mark.parametrize(
    ("arg_types", "arg_orders", "expected"),
    [
        (None, None, ()),
        (None, [], ()),
        ({}, None, ()),
        ({}, [], ()),
        ({"a": "num"}, None, ("a",)),
        ({"a": "num"}, [], ("a",)),
        ({"a": "num"}, ["a"], ("a",)),
        ({"a": "num"}, "map", "map"),
        ({"a": "num", "b": "num"}, ["b", "a"], ("b", "a")),
        ({"a": "num", "b": "num"}, ["a", "b"], ("a", "b")),
        ({"a": "num", "b": "num"}, "map", "map"),
        ({"a": "num", "b": "num", "c": "any"}, ["c", "a", "b"], ("c", "a", "b")),
    ],
)
def test_arg_orders_valid(arg_types, arg_orders, expected):
    assert load(arg_types=arg_types, arg_orders=arg_orders).arg_orders == expected


@pytest.mark.parametrize(
    ("arg_types", "arg_orders"),
    [
        (None, ["a"]),
        (None, "map"),
        ({}, ["a"]),
        ({}, "map"),
        ({"a": "num", "b": "num"}, None),  # missing orders with 2+ args
        ({"a": "num", "b": "num"}, []),  # [] with 2+ args (reference quirk fixed)
        ({"a": "num", "b": "num"}, ["a"]),  # too short
        ({"a": "num", "b": "num"}, ["a", "b", "c"]),  # too long
        ({"a": "num", "b": "num"}, ["a", "c"]),  # mismatched name
        ({"a": "num", "b": "num"}, ["a", "a"]),  # duplicate
        ({"a": "num"}, ["b"]),
        ({"a": "num"}, "list"),
        ({"a": "num"}, "a"),
        ({"a": "num"}, [1]),
        ({"a": "num"}, {"a": 0}),
        ({"a": "num"}, 5),
    ],
)
def test_arg_orders_invalid(arg_types, arg_orders):
    fails("arg_orders", arg_types=arg_types, arg_orders=arg_orders)


def test_arg_orders_missing_message_lists_arguments():
    message = fails("arg_orders", arg_types={"a": "num", "b": "num"})
    assert "2 declared arguments (a, b)" in message


def test_arg_orders_mismatch_message_lists_declared():
    message = fails("arg_orders", arg_types={"a": "num", "b": "num"}, arg_orders=["a", "x"])
    assert "declared: a, b" in message


# ------------------------------------------------------------------ response_type


@pytest.mark.parametrize("value", ["sync", "async", "stream", "none"])
def test_response_type_valid(value):
    assert load(response_type=value).response_type == value


@pytest.mark.parametrize("value", ["SYNC", "", None, "call", 1, False])
def test_response_type_invalid(value):
    fails("response_type", response_type=value)


# ------------------------------------------------------------------------ timeout


@pytest.mark.parametrize("value", [100, 101, 5000, 299_999, 300_000])
def test_timeout_valid(value):
    assert load(timeout=value).timeout == value


def test_timeout_infinity():
    assert load(timeout="infinity").timeout is None


@pytest.mark.parametrize("value", [99, 0, -1, 300_001, 1000.0, "5000", "Infinity", None, True, [100]])
def test_timeout_invalid(value):
    fails("timeout", timeout=value)


# --------------------------------------------------------------- choose_node_mode


@pytest.mark.parametrize("value", ["any", "random", "hash", "round_robin", "first", "last", {"hash": "user_id"},
                                   {"sticky": "session"}, "myapp.routing:pick"])
def test_choose_node_mode_valid(value):
    assert load(choose_node_mode=value).choose_node_mode == value


@pytest.mark.parametrize(
    "value",
    ["sticky", "RANDOM", "", None, {"hash": ""}, {"sticky": 1}, {"random": "x"}, {"hash": "a", "sticky": "b"},
     {}, ["hash", "k"], 1],
)
def test_choose_node_mode_invalid(value):
    fails("choose_node_mode", choose_node_mode=value)


# --------------------------------------------------------------- check_permission


@pytest.mark.parametrize("value", [False, "any_authenticated", {"role": ["admin"]}, {"role": ["a", "b"]},
                                   {"role": []}])
def test_check_permission_valid(value):
    assert load(check_permission=value).check_permission == value


def test_check_permission_arg_naming_declared_arg():
    cfg = load(check_permission={"arg": "user_id"}, arg_types={"user_id": "string"})
    assert cfg.check_permission == {"arg": "user_id"}


def test_check_permission_arg_naming_undeclared_arg():
    message = fails("check_permission", check_permission={"arg": "user_id"}, arg_types={"name": "string"})
    assert "'user_id'" in message and "does not declare" in message


def test_check_permission_arg_without_any_arg_types():
    fails("check_permission", check_permission={"arg": "user_id"})


@pytest.mark.parametrize(
    "value",
    [True, None, "any", "", 0, {"arg": ""}, {"arg": 5}, {"arg": []}, {"role": "admin"}, {"role": [""]},
     {"role": [1]}, {"role": ["a"], "arg": "x"}, {"user": "x"}, ["role"]],
)
def test_check_permission_invalid(value):
    fails("check_permission", check_permission=value, arg_types={"x": "string"})


# ----------------------------------------------------- permission_callback / hooks


@pytest.mark.parametrize("value", [None, "pkg.mod:can_call", "mod:Class.method", "_m:_f"])
def test_permission_callback_valid(value):
    assert load(permission_callback=value).permission_callback == value


@pytest.mark.parametrize("value", ["pkg.mod.can_call", "mod:", ":f", "mod:f:g", "mod: f", "1mod:f", 5, True,
                                   {"callable": "m:f"}, ["m:f"]])
def test_permission_callback_invalid(value):
    fails("permission_callback", permission_callback=value)


@pytest.mark.parametrize("hook", ["before_execute", "after_execute"])
@pytest.mark.parametrize(
    "value",
    [None, {"callable": "pkg.hooks:check"}, {"callable": "pkg.hooks:check", "args": []},
     {"callable": "m:f", "args": [1, "x", {"k": None}]}],
)
def test_hooks_valid(hook, value):
    assert getattr(load(**{hook: value}), hook) == value


@pytest.mark.parametrize("hook", ["before_execute", "after_execute"])
@pytest.mark.parametrize(
    "value",
    ["pkg.hooks:check", {"callable": "nocolon"}, {"args": []}, {"callable": "m:f", "args": "x"},
     {"callable": "m:f", "extra": 1}, {"callable": 5}, [], 5, True],
)
def test_hooks_invalid(hook, value):
    fails(hook, **{hook: value})


@pytest.mark.parametrize("value", [1, 100, 300_000, 10**7])
def test_hook_timeout_valid(value):
    assert load(hook_timeout=value).hook_timeout == value


@pytest.mark.parametrize("value", [0, -5, 1.5, "5000", None, True])
def test_hook_timeout_invalid(value):
    fails("hook_timeout", hook_timeout=value)


# -------------------------------------------------------------------------- retry


@pytest.mark.parametrize("value", [None, 1, 3, 0.5, 2.5, {"same_node": 2}, {"all_nodes": 3}, {"all_nodes": 1.5}])
def test_retry_valid(value):
    assert load(retry=value).retry == value


@pytest.mark.parametrize(
    "value",
    [0, -1, True, "3", {"same_node": 0}, {"all_nodes": -1}, {"same_node": "2"}, {"same_node": True},
     {"other": 1}, {"same_node": 1, "all_nodes": 1}, {}, [1]],
)
def test_retry_invalid(value):
    fails("retry", retry=value)


# ------------------------------------------------------------------ bool flags


@pytest.mark.parametrize("field", ["request_info", "disabled"])
def test_bool_flags_valid(field):
    assert getattr(load(**{field: True}), field) is True
    assert getattr(load(**{field: False}), field) is False


@pytest.mark.parametrize("field", ["request_info", "disabled"])
@pytest.mark.parametrize("value", [1, 0, "true", None, []])
def test_bool_flags_invalid(field, value):
    fails(field, **{field: value})


# --------------------------------------------------------------------- unknown fields


@pytest.mark.parametrize("field", ["nodes", "mfa", "user_roles", "arg_order", "Service"])
def test_unknown_field(field):
    message = fails(field, **{field: "x"})
    assert f"{field}: unknown field" in message


# ------------------------------------------------------------------ task name / key


def test_task_name():
    assert load().task_name == "users.get_user"
    assert load(version="1.2.0").task_name == "users.get_user@1.2.0"


def test_key():
    assert load(version="2").key == ("users", "get_user", "2")
    assert load().key == ("users", "get_user", None)


# -------------------------------------------------------------------- round trip


FULL = {
    "service": "users",
    "request_type": "update",
    "version": "1.0.0",
    "arg_types": {
        "user_id": "uuid",
        "name": {"type": "string", "max_bytes": 100},
        "age": {"type": "num", "default_value": 18, "allow_nil": True},
        "when": "datetime",
        "extra": {"type": "map", "required": ["k"], "accept": ["k", "v"], "max_items": 10},
        "meta": "map",
    },
    "arg_orders": ["user_id", "name", "age", "when", "extra", "meta"],
    "response_type": "async",
    "timeout": 300_000,
    "choose_node_mode": {"sticky": "user_id"},
    "check_permission": {"arg": "user_id"},
    "permission_callback": "pkg.perm:check",
    "retry": {"same_node": 2},
    "before_execute": {"callable": "pkg.hooks:before", "args": [1]},
    "after_execute": {"callable": "pkg.hooks:after", "args": []},
    "hook_timeout": 750,
    "request_info": True,
    "disabled": True,
}


@pytest.mark.parametrize(
    "data",
    [
        BASE,
        FULL,
        {**BASE, "timeout": "infinity", "arg_types": {"a": "any"}, "arg_orders": "map", "retry": 3},
        {**BASE, "arg_types": {"x": "string"}, "check_permission": {"role": ["admin"]},
         "choose_node_mode": {"hash": "x"}},
    ],
    ids=["minimal", "full", "map-infinity", "role"],
)
def test_round_trip(data):
    cfg = load_funconfig(data)
    again = load_funconfig(cfg.to_json())
    assert again == cfg
    assert again.to_json() == cfg.to_json()


def test_round_trip_with_list_arguments():
    # BUG: ArgSpec.to_json spells out max_items=1000 for list types, which parse_spec keeps as an
    # explicit value, so the reloaded config is not equal to the original (see test_argtypes).
    cfg = load(arg_types={"tags": "list_string", "ids": "list_uuid"}, arg_orders=["tags", "ids"])
    assert load_funconfig(cfg.to_json()) == cfg


def test_to_json_shape():
    data = load(timeout="infinity", arg_types={"a": "num"}).to_json()
    assert data == {
        "service": "users", "request_type": "get_user", "version": None,
        "arg_types": {"a": {"type": "num", "allow_nil": False}}, "arg_orders": ["a"],
        "response_type": "sync", "timeout": "infinity", "choose_node_mode": "any",
        "check_permission": False, "permission_callback": None, "retry": None,
        "before_execute": None, "after_execute": None, "hook_timeout": 5000,
        "request_info": False, "disabled": False,
    }
    assert load(arg_types={"a": "num"}, arg_orders="map").to_json()["arg_orders"] == "map"

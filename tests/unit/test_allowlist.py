"""workers.allowlist: the hard denylist and GENAPI_REGISTRATION_ALLOWLIST."""

from __future__ import annotations

import pytest

from workers.allowlist import (
    DENIED_MODULES,
    Allowlist,
    config_callables,
    denied_callable,
    hard_denial,
    registration_refusal,
)
from workers.funconfig import FunConfig, load_funconfig

NOT_OBJECT = "must be a JSON object with 'services', 'functions' and/or 'callables' lists"


# ------------------------------------------------------------------------ parse


def test_parse_empty_object_restricts_nothing():
    allowlist = Allowlist.parse("{}")
    assert allowlist == Allowlist()
    assert (allowlist.services, allowlist.functions, allowlist.callables) == (None, None, None)


def test_parse_every_list():
    allowlist = Allowlist.parse(
        '{"services": ["billing", "users"], "functions": ["ops.restart"], '
        '"callables": ["myapp.hooks", "myapp.auth:can_edit"]}')
    assert allowlist.services == frozenset({"billing", "users"})
    assert allowlist.functions == frozenset({"ops.restart"})
    assert allowlist.callables == frozenset({"myapp.hooks", "myapp.auth:can_edit"})


def test_parse_keeps_missing_lists_unset_and_empty_lists_empty():
    allowlist = Allowlist.parse('{"services": []}')
    assert allowlist.services == frozenset()
    assert allowlist.functions is None and allowlist.callables is None


def test_parse_duplicates_collapse():
    assert Allowlist.parse('{"services": ["a", "a", "b"]}').services == frozenset({"a", "b"})


def test_parse_tolerates_surrounding_whitespace():
    assert Allowlist.parse('  {"functions": ["a.b"]}\n').functions == frozenset({"a.b"})


@pytest.mark.parametrize("raw", ["{", "{services: []}", "{'services': []}", '{"services": ["a"]'])
def test_parse_bad_json_object(raw):
    with pytest.raises(ValueError) as info:
        Allowlist.parse(raw)
    message = str(info.value)
    assert message.startswith('must be a JSON object such as {"services": ["billing"]} ('), message
    assert message.endswith(")")


@pytest.mark.parametrize(("raw", "names"), [
    ("billing", {"billing"}),
    ("billing, ops.restart ,myapp.hooks:audit,", {"billing", "ops.restart", "myapp.hooks:audit"}),
    ('["billing", "ops.restart"]', {"billing", "ops.restart"}),
    ("[]", set()),
    ("", set()),
])
def test_a_flat_list_restricts_services_functions_and_callables_alike(raw, names):
    allowlist = Allowlist.parse(raw)
    assert allowlist.services == allowlist.functions == allowlist.callables == frozenset(names)


def test_a_flat_list_allows_what_each_entry_names():
    allowlist = Allowlist.parse("billing,ops.restart,myapp.hooks")
    assert allowlist.refusal("billing", "charge", ["myapp.hooks:audit"]) is None
    assert allowlist.refusal("ops", "restart", []) is None
    assert allowlist.refusal("ops", "stop", []) == "function ops.stop is not in GENAPI_REGISTRATION_ALLOWLIST"
    assert allowlist.refusal("billing", "charge", ["other:f"]) == \
        "callable other:f is not in GENAPI_REGISTRATION_ALLOWLIST"


@pytest.mark.parametrize("raw", ['"billing"', "[1]", "[", '[""]', "a b", "[null]", "svc:"])
def test_a_flat_list_of_anything_but_names_is_refused(raw):
    with pytest.raises(ValueError, match="must be a JSON object, or a list of names"):
        Allowlist.parse(raw)


def test_parse_unknown_key():
    with pytest.raises(ValueError) as info:
        Allowlist.parse('{"services": ["a"], "nodes": ["n"]}')
    assert str(info.value) == "unknown key nodes (allowed: services, functions, callables)"


def test_parse_several_unknown_keys_sorted():
    with pytest.raises(ValueError) as info:
        Allowlist.parse('{"zeta": [], "alpha": [], "callables": []}')
    assert str(info.value) == "unknown key alpha, zeta (allowed: services, functions, callables)"


def test_parse_unknown_key_reported_before_bad_list():
    with pytest.raises(ValueError, match="^unknown key bogus "):
        Allowlist.parse('{"services": "billing", "bogus": []}')


@pytest.mark.parametrize("key", ["services", "functions", "callables"])
@pytest.mark.parametrize("value", ['"billing"', "null", "1", '{"a": 1}', '[""]', "[1]", '["ok", null]',
                                   '["ok", ""]', "[[\"a\"]]"])
def test_parse_list_of_non_empty_strings_required(key, value):
    with pytest.raises(ValueError) as info:
        Allowlist.parse(f'{{"{key}": {value}}}')
    assert str(info.value) == f"{key!r} must be a list of non-empty strings"


def test_to_json_lists_only_given_keys_sorted():
    allowlist = Allowlist.parse('{"services": ["b", "a"], "callables": []}')
    assert allowlist.to_json() == {"services": ["a", "b"], "callables": []}
    assert Allowlist().to_json() == {}


# ---------------------------------------------------------------------- refusal


def test_no_lists_refuse_nothing():
    assert Allowlist().refusal("billing", "charge", ["any.mod:func"]) is None


def test_services_list_admits_listed_service():
    allowlist = Allowlist(services=frozenset({"billing"}))
    assert allowlist.refusal("billing", "charge", []) is None
    assert allowlist.refusal("users", "get", []) == "function users.get is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_functions_list_admits_exact_function_only():
    allowlist = Allowlist(functions=frozenset({"ops.restart"}))
    assert allowlist.refusal("ops", "restart", []) is None
    assert allowlist.refusal("ops", "shutdown", []) == "function ops.shutdown is not in GENAPI_REGISTRATION_ALLOWLIST"
    assert allowlist.refusal("ops2", "restart", []) is not None


def test_services_or_functions_either_admits():
    allowlist = Allowlist(services=frozenset({"billing"}), functions=frozenset({"ops.restart"}))
    assert allowlist.refusal("billing", "anything", []) is None
    assert allowlist.refusal("ops", "restart", []) is None
    assert allowlist.refusal("ops", "other", []) == "function ops.other is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_missing_functions_list_does_not_restrict_beyond_services():
    # only services given: functions of other services are refused, listed services pass whole
    allowlist = Allowlist.parse('{"services": ["billing"]}')
    assert allowlist.refusal("billing", "x", []) is None
    assert allowlist.refusal("other", "x", []) is not None


def test_missing_service_lists_do_not_restrict_when_only_callables_given():
    allowlist = Allowlist.parse('{"callables": ["myapp.hooks"]}')
    assert allowlist.refusal("any_service", "any_function", []) is None


@pytest.mark.parametrize("raw", ['{"services": []}', '{"functions": []}', '{"services": [], "functions": []}'])
def test_empty_service_lists_refuse_every_function(raw):
    allowlist = Allowlist.parse(raw)
    assert allowlist.refusal("billing", "charge", []) == \
        "function billing.charge is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_empty_callables_list_refuses_every_callable():
    allowlist = Allowlist.parse('{"callables": []}')
    assert allowlist.refusal("s", "f", ["myapp.hooks:before"]) == \
        "callable myapp.hooks:before is not in GENAPI_REGISTRATION_ALLOWLIST"
    assert allowlist.refusal("s", "f", []) is None  # nothing named, nothing refused


def test_callable_admitted_by_module():
    allowlist = Allowlist(callables=frozenset({"myapp.hooks"}))
    assert allowlist.refusal("s", "f", ["myapp.hooks:before", "myapp.hooks:after"]) is None
    assert allowlist.refusal("s", "f", ["myapp.other:before"]) == \
        "callable myapp.other:before is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_callable_admitted_exactly():
    allowlist = Allowlist(callables=frozenset({"myapp.auth:can_edit"}))
    assert allowlist.refusal("s", "f", ["myapp.auth:can_edit"]) is None
    assert allowlist.refusal("s", "f", ["myapp.auth:can_delete"]) == \
        "callable myapp.auth:can_delete is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_callable_module_listing_is_not_a_prefix_match():
    allowlist = Allowlist(callables=frozenset({"myapp"}))
    assert allowlist.refusal("s", "f", ["myapplication:f"]) is not None


def test_every_refused_callable_is_named_in_order():
    allowlist = Allowlist(callables=frozenset({"ok"}))
    assert allowlist.refusal("s", "f", ["bad.one:a", "ok:b", "bad.two:c"]) == \
        "callable bad.one:a, bad.two:c is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_function_refusal_reported_before_callable_refusal():
    allowlist = Allowlist(services=frozenset({"billing"}), callables=frozenset())
    assert allowlist.refusal("users", "get", ["x:y"]) == "function users.get is not in GENAPI_REGISTRATION_ALLOWLIST"
    assert allowlist.refusal("billing", "get", ["x:y"]) == "callable x:y is not in GENAPI_REGISTRATION_ALLOWLIST"


# ------------------------------------------------------------------ hard denial


@pytest.mark.parametrize("module", sorted(DENIED_MODULES))
def test_every_denied_module_is_refused(module):
    assert denied_callable(f"{module}:anything")
    assert hard_denial("svc", [f"{module}:anything"]) == \
        f"callable {module}:anything is in a module that can never be registered"


def test_denied_modules_cover_the_documented_ones():
    assert {"os", "posix", "nt", "subprocess", "sys", "builtins", "importlib", "shutil", "pickle", "marshal",
            "ctypes", "socket"} <= DENIED_MODULES


@pytest.mark.parametrize("path", ["_pickle:loads", "_socket:socket", "_ctypes:dlopen", "_shutil:x", "__sys:y"])
def test_leading_underscore_aliases_are_refused(path):
    assert denied_callable(path)


@pytest.mark.parametrize("path", ["posix:system", "nt:system", "os:system", "subprocess:run", "builtins:eval",
                                  "importlib:import_module", "sys:exit", "shutil:rmtree", "marshal:loads"])
def test_command_running_callables_are_refused(path):
    assert denied_callable(path)


@pytest.mark.parametrize("path", ["os.path:join", "importlib.util:spec_from_file_location",
                                  "ctypes.util:find_library", "_ctypes.x.y:z"])
def test_submodules_of_denied_modules_are_refused(path):
    assert denied_callable(path)


@pytest.mark.parametrize("path", ["json:dumps", "myapp.hooks:before", "osmosis:run", "system:os",
                                  "myapp.os:system", "possix:system", "sysconfig:get_path", "pickles:x"])
def test_harmless_modules_are_allowed(path):
    assert not denied_callable(path)
    assert hard_denial("svc", [path]) is None


def test_hard_denial_names_every_blocked_callable():
    assert hard_denial("svc", ["json:dumps", "os:system", "myapp:f", "_pickle:loads"]) == \
        "callable os:system, _pickle:loads is in a module that can never be registered"


def test_hard_denial_allows_no_callables():
    assert hard_denial("billing", []) is None


@pytest.mark.parametrize("service", ["gateway", "relay", "celery", "celery.x", "celery.backend_cleanup"])
def test_reserved_services_are_refused(service):
    assert hard_denial(service, []) == f"service {service!r} is reserved and can never be registered"


@pytest.mark.parametrize("service", ["celeryish", "my_celery", "gateways", "relay2", "billing"])
def test_similar_service_names_are_allowed(service):
    assert hard_denial(service, []) is None


def test_service_refusal_reported_before_callables():
    assert hard_denial("gateway", ["os:system"]) == "service 'gateway' is reserved and can never be registered"


# ------------------------------------------------------------- config_callables


HOOKS = {
    "permission_callback": "myapp.auth:can",
    "before_execute": {"callable": "myapp.hooks:before", "args": [1]},
    "after_execute": {"callable": "myapp.hooks:after", "args": []},
}


def test_config_callables_of_a_funconfig_object():
    config = load_funconfig({"service": "s", "request_type": "f", **HOOKS})
    assert config_callables(config) == ["myapp.auth:can", "myapp.hooks:before", "myapp.hooks:after"]


def test_config_callables_of_a_json_dict():
    data = {"service": "s", "request_type": "f", **HOOKS, "choose_node_mode": "myapp.nodes:pick"}
    assert config_callables(data) == ["myapp.auth:can", "myapp.hooks:before", "myapp.hooks:after",
                                      "myapp.nodes:pick"]


def test_config_callables_includes_a_module_function_node_mode_on_an_object():
    config = FunConfig(service="s", request_type="f", choose_node_mode="myapp.nodes:pick")
    assert config_callables(config) == ["myapp.nodes:pick"]


@pytest.mark.parametrize("mode", ["random", "hash", "round_robin", {"hash": "user_id"}, {"sticky": "k:v"}])
def test_builtin_node_modes_are_not_callables(mode):
    assert config_callables({"choose_node_mode": mode}) == []


def test_config_callables_of_a_plain_config_is_empty():
    assert config_callables(load_funconfig({"service": "s", "request_type": "f"})) == []
    assert config_callables({}) == []


def test_config_callables_ignores_malformed_values():
    data = {"permission_callback": 5, "before_execute": "myapp:f", "after_execute": {"callable": None}}
    assert config_callables(data) == []


def test_config_callables_each_field_alone():
    assert config_callables({"permission_callback": "a:b"}) == ["a:b"]
    assert config_callables({"before_execute": {"callable": "a:b"}}) == ["a:b"]
    assert config_callables({"after_execute": {"callable": "a:b", "args": []}}) == ["a:b"]


# ---------------------------------------------------------- registration_refusal


def test_registration_refusal_without_allowlist_applies_hard_denial_only():
    assert registration_refusal({"service": "billing", "request_type": "charge"}, None) is None
    assert registration_refusal({"service": "billing", "request_type": "charge",
                                 "permission_callback": "os:system"}, None) == \
        "callable os:system is in a module that can never be registered"


def test_registration_refusal_of_reserved_service():
    assert registration_refusal({"service": "celery", "request_type": "x"}, None) == \
        "service 'celery' is reserved and can never be registered"


def test_hard_denial_overrides_the_allowlist():
    allowlist = Allowlist.parse('{"services": ["celery.x", "billing"], "callables": ["os", "subprocess:run"]}')
    assert registration_refusal({"service": "celery.x", "request_type": "f"}, allowlist) == \
        "service 'celery.x' is reserved and can never be registered"
    assert registration_refusal({"service": "billing", "request_type": "f",
                                 "before_execute": {"callable": "subprocess:run"}}, allowlist) == \
        "callable subprocess:run is in a module that can never be registered"


def test_registration_refusal_applies_the_allowlist():
    allowlist = Allowlist.parse('{"functions": ["billing.charge"], "callables": ["myapp.auth"]}')
    ok = {"service": "billing", "request_type": "charge", "permission_callback": "myapp.auth:can"}
    assert registration_refusal(ok, allowlist) is None
    assert registration_refusal({**ok, "request_type": "refund"}, allowlist) == \
        "function billing.refund is not in GENAPI_REGISTRATION_ALLOWLIST"
    assert registration_refusal({**ok, "permission_callback": "myapp.other:can"}, allowlist) == \
        "callable myapp.other:can is not in GENAPI_REGISTRATION_ALLOWLIST"


def test_registration_refusal_of_a_funconfig_object():
    config = load_funconfig({"service": "billing", "request_type": "charge",
                             "after_execute": {"callable": "myapp.hooks:after", "args": []}})
    assert registration_refusal(config, None) is None
    assert registration_refusal(config, Allowlist(services=frozenset({"billing"}))) is None
    assert registration_refusal(config, Allowlist(services=frozenset({"users"}))) == \
        "function billing.charge is not in GENAPI_REGISTRATION_ALLOWLIST"
    assert registration_refusal(config, Allowlist(callables=frozenset({"myapp.other"}))) == \
        "callable myapp.hooks:after is not in GENAPI_REGISTRATION_ALLOWLIST"
    denied = load_funconfig({"service": "billing", "request_type": "charge", "permission_callback": "posix:system"})
    assert registration_refusal(denied, None) == "callable posix:system is in a module that can never be registered"


@pytest.mark.parametrize("path", ["tempfile:_os.system", "json:__builtins__.eval", "pkg.mod:Class._secret",
                                  "pkg.mod:_helper"])
def test_callables_reached_through_a_private_attribute_are_always_refused(path):
    assert hard_denial("svc", [path]) == f"callable {path} names a private attribute and can never be registered"


@pytest.mark.parametrize("path", ["_posixsubprocess:fork_exec", "_imp:create_dynamic", "_frozen_importlib:_load",
                                  "runpy:run_path", "pty:spawn"])
def test_more_process_and_import_modules_are_always_refused(path):
    assert denied_callable(path)

"""The policy settings (GENAPI_RATE_LIMITS, GENAPI_BREAKERS, GENAPI_TRUSTED_PROXY_HEADER,
the gateway hooks and their timeout), and gateway_app.ratelimit's pure parts: the value a
limit counts by, which limits are in force, an operator's scope, the config listing."""

from __future__ import annotations

import json

import pytest

from gateway_app.ratelimit import current, describe, key_value, scope_of
from workers.policy_config import BreakerConfig, Limit, RateLimitConfig
from workers.settings import Settings, SettingsError

LIMITS = {"enabled": True, "fail_open": False, "timeout_ms": 200,
          "global_limits": [{"key": "user_id", "max_requests": 100, "window_ms": 60000}],
          "api_limits": [{"service": "s", "request_type": "r", "key": "device_id", "max_requests": 3,
                          "window_ms": 1500}]}


# ------------------------------------------------------------------ defaults


def test_policy_defaults():
    s = Settings.from_env({})
    assert s.rate_limits == RateLimitConfig() and not s.rate_limits.active
    assert s.breakers == BreakerConfig()
    assert s.trusted_proxy_header is None
    assert s.rate_limit_redis_url is None
    assert s.before_execute == () and s.after_execute == ()
    assert s.hook_timeout_ms == 5000


# ------------------------------------------------------------------ GENAPI_RATE_LIMITS


def test_rate_limits_parsed():
    s = Settings.from_env({"GENAPI_RATE_LIMITS": json.dumps(LIMITS)})
    assert s.rate_limits == RateLimitConfig.parse(LIMITS)
    assert s.rate_limits.fail_open is False and s.rate_limits.timeout_ms == 200
    assert s.rate_limits.api_limits == (Limit("device_id", 3, 1500, "s", "r"),)


def test_rate_limits_partial_keeps_defaults():
    s = Settings.from_env({"GENAPI_RATE_LIMITS": '{"fail_open": false}'})
    assert s.rate_limits == RateLimitConfig(fail_open=False)


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_rate_limits_blank_is_the_default(raw):
    assert Settings.from_env({"GENAPI_RATE_LIMITS": raw}).rate_limits == RateLimitConfig()


def test_rate_limits_invalid_json_refused():
    with pytest.raises(SettingsError, match="GENAPI_RATE_LIMITS is not valid JSON"):
        Settings.from_env({"GENAPI_RATE_LIMITS": "{enabled: true}"})


@pytest.mark.parametrize(("raw", "field"), [
    ('{"enable": true}', "enable"),
    ('{"global_limits": [{"key": "user_id", "max_requests": 1, "window_ms": 0}]}', "window_ms"),
    ('{"api_limits": [{"key": "user_id", "max_requests": 1, "window_ms": 1}]}', "service"),
    ('{"timeout_ms": "fast"}', "timeout_ms"),
    ("[]", "JSON object"),
])
def test_rate_limits_bad_config_refused_naming_the_variable_and_field(raw, field):
    with pytest.raises(SettingsError, match="^GENAPI_RATE_LIMITS: ") as caught:
        Settings.from_env({"GENAPI_RATE_LIMITS": raw})
    assert field in str(caught.value)


# ------------------------------------------------------------------ GENAPI_BREAKERS


def test_breakers_parsed():
    s = Settings.from_env({"GENAPI_BREAKERS": '{"enabled": false, "worker_threshold": 2, "cooldown_ms": 100}'})
    assert s.breakers == BreakerConfig(enabled=False, service_threshold=10, worker_threshold=2, cooldown_ms=100)


def test_breakers_blank_is_the_default():
    assert Settings.from_env({"GENAPI_BREAKERS": " "}).breakers == BreakerConfig()


def test_breakers_invalid_json_refused():
    with pytest.raises(SettingsError, match="GENAPI_BREAKERS is not valid JSON"):
        Settings.from_env({"GENAPI_BREAKERS": "{"})


@pytest.mark.parametrize(("raw", "field"), [('{"threshold": 1}', "threshold"),
                                            ('{"service_threshold": 0}', "service_threshold"),
                                            ('{"enabled": "no"}', "enabled")])
def test_breakers_bad_config_refused_naming_the_variable_and_field(raw, field):
    with pytest.raises(SettingsError, match="^GENAPI_BREAKERS: ") as caught:
        Settings.from_env({"GENAPI_BREAKERS": raw})
    assert field in str(caught.value)


# ------------------------------------------------------------------ proxy header, limiter Redis


def test_trusted_proxy_header():
    assert Settings.from_env({"GENAPI_TRUSTED_PROXY_HEADER": "X-Forwarded-For"}).trusted_proxy_header == \
        "X-Forwarded-For"
    assert Settings.from_env({"GENAPI_TRUSTED_PROXY_HEADER": "  X-Real-IP \n"}).trusted_proxy_header == "X-Real-IP"


@pytest.mark.parametrize("raw", ["", "   "])
def test_trusted_proxy_header_blank_is_none(raw):
    assert Settings.from_env({"GENAPI_TRUSTED_PROXY_HEADER": raw}).trusted_proxy_header is None


def test_rate_limit_redis_url():
    s = Settings.from_env({"GENAPI_RATE_LIMIT_REDIS_URL": "redis://limiter:6380/1"})
    assert s.rate_limit_redis_url == "redis://limiter:6380/1"
    assert s.redis_url == Settings().redis_url


def test_rate_limit_redis_url_must_be_redis():
    with pytest.raises(SettingsError, match="GENAPI_RATE_LIMIT_REDIS_URL"):
        Settings.from_env({"GENAPI_RATE_LIMIT_REDIS_URL": "http://limiter"})


# ------------------------------------------------------------------ gateway hooks


@pytest.mark.parametrize("name", ["GENAPI_BEFORE_EXECUTE", "GENAPI_AFTER_EXECUTE"])
@pytest.mark.parametrize(("raw", "expected"), [
    ("pkg.hooks:quota", ("pkg.hooks:quota",)),
    ("pkg.hooks:quota, pkg.audit:record ", ("pkg.hooks:quota", "pkg.audit:record")),
    ("a:f,,a:f,b:g", ("a:f", "b:g")),
    ('["a:f", "b:g"]', ("a:f", "b:g")),
    ("", ()),
])
def test_hook_lists(name, raw, expected):
    s = Settings.from_env({name: raw})
    field = "before_execute" if name == "GENAPI_BEFORE_EXECUTE" else "after_execute"
    assert getattr(s, field) == expected


def test_hook_lists_are_independent():
    s = Settings.from_env({"GENAPI_BEFORE_EXECUTE": "a:before", "GENAPI_AFTER_EXECUTE": "a:after"})
    assert (s.before_execute, s.after_execute) == (("a:before",), ("a:after",))


def test_hook_list_bad_json_array_refused():
    with pytest.raises(SettingsError, match="GENAPI_BEFORE_EXECUTE"):
        Settings.from_env({"GENAPI_BEFORE_EXECUTE": "[1, 2]"})


@pytest.mark.parametrize(("raw", "value"), [("250", 250), ("1", 1), ("300000", 300000), ("", 5000)])
def test_hook_timeout(raw, value):
    assert Settings.from_env({"GENAPI_HOOK_TIMEOUT_MS": raw}).hook_timeout_ms == value


@pytest.mark.parametrize("raw", ["0", "-5", "300001", "fast", "1.5"])
def test_hook_timeout_refused(raw):
    with pytest.raises(SettingsError, match="GENAPI_HOOK_TIMEOUT_MS"):
        Settings.from_env({"GENAPI_HOOK_TIMEOUT_MS": raw})


# ------------------------------------------------------------------ ratelimit.key_value

FACTS = {"user_id": "alice", "device_id": "dev-1", "ip_address": "10.0.0.7"}


@pytest.mark.parametrize("key", ["user_id", "device_id", "ip_address"])
def test_key_value_session_facts(key):
    assert key_value(key, FACTS, {key: "from-args"}) == FACTS[key]


@pytest.mark.parametrize("key", ["user_id", "device_id", "ip_address"])
def test_key_value_session_fact_missing_is_not_taken_from_args(key):
    assert key_value(key, {}, {key: "from-args"}) is None


def test_key_value_other_key_is_an_argument():
    assert key_value("account", FACTS, {"account": "acc-9"}) == "acc-9"


@pytest.mark.parametrize("args", [None, {}, {"account": ""}, {"account": 5}, {"account": None},
                                  {"account": ["a"]}, {"account": {"id": "a"}}])
def test_key_value_argument_must_be_a_non_empty_string(args):
    assert key_value("account", FACTS, args) is None


@pytest.mark.parametrize("value", ["", None, 42])
def test_key_value_fact_must_be_a_non_empty_string(value):
    assert key_value("device_id", {"device_id": value}, None) is None


# ------------------------------------------------------------------ ratelimit.current / describe / scope_of


SETTINGS_CONFIG = RateLimitConfig.parse(LIMITS)


@pytest.mark.parametrize("runtime", [None, ""])
def test_current_without_runtime_is_the_settings(runtime):
    assert current(SETTINGS_CONFIG, runtime) == (SETTINGS_CONFIG, "settings")


def test_current_runtime_replaces_the_settings():
    stored = json.dumps({"enabled": False, "global_limits": []})
    config, source = current(SETTINGS_CONFIG, stored)
    assert source == "runtime"
    assert config == RateLimitConfig(enabled=False)


@pytest.mark.parametrize("stored", ["{not json", '{"bogus": 1}', '{"timeout_ms": 0}', "[]"])
def test_current_bad_runtime_falls_back_to_the_settings(stored):
    assert current(SETTINGS_CONFIG, stored) == (SETTINGS_CONFIG, "settings")


def test_describe_is_the_config_and_its_source():
    assert describe(SETTINGS_CONFIG, "settings") == {**LIMITS, "source": "settings"}
    assert describe(RateLimitConfig(), "runtime") == {
        "enabled": True, "fail_open": True, "timeout_ms": 1000, "global_limits": [], "api_limits": [],
        "source": "runtime"}


def test_scope_of_both_or_neither():
    assert scope_of(None, None) == (None, None)
    assert scope_of("s", "r") == ("s", "r")


@pytest.mark.parametrize(("service", "request_type"), [("s", None), (None, "r")])
def test_scope_of_one_without_the_other_refused(service, request_type):
    with pytest.raises(ValueError, match="both a service and a request type"):
        scope_of(service, request_type)

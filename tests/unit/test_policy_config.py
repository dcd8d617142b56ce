"""workers.policy_config: GENAPI_RATE_LIMITS and GENAPI_BREAKERS parsed and validated."""

from __future__ import annotations

import pytest

from workers.policy_config import BreakerConfig, Limit, PolicyConfigError, RateLimitConfig

FULL = {
    "enabled": True, "fail_open": False, "timeout_ms": 250,
    "global_limits": [{"key": "user_id", "max_requests": 100, "window_ms": 60000}],
    "api_limits": [{"service": "s", "request_type": "r", "key": "user_id", "max_requests": 3, "window_ms": 60000}],
}


# ------------------------------------------------------------------ rate limits: parse


def test_empty_object_gives_the_defaults():
    config = RateLimitConfig.parse({})
    assert config == RateLimitConfig()
    assert (config.enabled, config.fail_open, config.timeout_ms) == (True, True, 1000)
    assert config.global_limits == () and config.api_limits == ()


def test_defaults_have_nothing_to_check():
    assert RateLimitConfig().active is False


def test_full_config_parsed():
    config = RateLimitConfig.parse(FULL)
    assert (config.enabled, config.fail_open, config.timeout_ms) == (True, False, 250)
    assert config.global_limits == (Limit("user_id", 100, 60000),)
    assert config.api_limits == (Limit("user_id", 3, 60000, service="s", request_type="r"),)
    assert config.active is True


def test_to_json_round_trips():
    assert RateLimitConfig.parse(FULL).to_json() == FULL
    assert RateLimitConfig.parse(RateLimitConfig.parse(FULL).to_json()) == RateLimitConfig.parse(FULL)


def test_global_limit_json_has_no_service():
    assert Limit("ip_address", 5, 1000).to_json() == {"key": "ip_address", "max_requests": 5, "window_ms": 1000}


def test_disabled_config_with_limits_is_not_active():
    assert RateLimitConfig.parse({**FULL, "enabled": False}).active is False


def test_api_limits_alone_make_it_active():
    assert RateLimitConfig.parse({"api_limits": FULL["api_limits"]}).active is True


def test_zero_max_requests_is_refused():
    # a limit that refuses everything "for 0 seconds" helps nobody; disable the function instead
    with pytest.raises(PolicyConfigError, match=r"max_requests must be an integer >= 1"):
        RateLimitConfig.parse({"global_limits": [{"key": "user_id", "max_requests": 0, "window_ms": 1}]})


def test_any_other_key_is_an_argument_name():
    config = RateLimitConfig.parse({"global_limits": [{"key": "account", "max_requests": 1, "window_ms": 1000}]})
    assert config.global_limits[0].key == "account"


# ------------------------------------------------------------------ rate limits: merging


def test_keys_left_out_keep_the_base_values():
    base = RateLimitConfig.parse(FULL)
    merged = RateLimitConfig.parse({"enabled": False}, base)
    assert merged.enabled is False
    assert (merged.fail_open, merged.timeout_ms) == (False, 250)
    assert merged.global_limits == base.global_limits and merged.api_limits == base.api_limits


def test_a_key_given_replaces_the_base_value_whole():
    base = RateLimitConfig.parse(FULL)
    merged = RateLimitConfig.parse({"global_limits": []}, base)
    assert merged.global_limits == ()
    assert merged.api_limits == base.api_limits


def test_without_base_missing_keys_take_the_defaults():
    config = RateLimitConfig.parse({"fail_open": False})
    assert config == RateLimitConfig(fail_open=False)


# ------------------------------------------------------------------ rate limits: refusals


def test_unknown_top_level_field_refused_by_name():
    with pytest.raises(PolicyConfigError, match="unknown field.*global_limit\\b"):
        RateLimitConfig.parse({"global_limit": []})


def test_unknown_limit_field_refused_by_name():
    with pytest.raises(PolicyConfigError, match=r"global_limits\[0\] has unknown field\(s\) burst"):
        RateLimitConfig.parse({"global_limits": [{"key": "user_id", "max_requests": 1, "window_ms": 1, "burst": 2}]})


def test_service_in_a_global_limit_refused():
    with pytest.raises(PolicyConfigError, match=r"global_limits\[0\].*request_type, service"):
        RateLimitConfig.parse({"global_limits": [{"service": "s", "request_type": "r", "key": "user_id",
                                                  "max_requests": 1, "window_ms": 1}]})


@pytest.mark.parametrize("missing", ["service", "request_type"])
def test_api_limit_needs_service_and_request_type(missing):
    limit = dict(FULL["api_limits"][0])
    del limit[missing]
    with pytest.raises(PolicyConfigError, match=rf"api_limits\[0\]\.{missing} must be a non-empty string"):
        RateLimitConfig.parse({"api_limits": [limit]})


@pytest.mark.parametrize("data", [[], "x", None, 3])
def test_not_an_object_refused(data):
    with pytest.raises(PolicyConfigError, match="must be a JSON object"):
        RateLimitConfig.parse(data)


@pytest.mark.parametrize(("field", "value"), [("enabled", "yes"), ("enabled", 1), ("fail_open", None)])
def test_flags_must_be_booleans(field, value):
    with pytest.raises(PolicyConfigError, match=rf"rate limits\.{field} must be true or false"):
        RateLimitConfig.parse({field: value})


@pytest.mark.parametrize("value", [0, -1, 1.5, "1000", True, None])
def test_timeout_ms_must_be_a_positive_integer(value):
    with pytest.raises(PolicyConfigError, match=r"rate limits\.timeout_ms must be an integer >= 1"):
        RateLimitConfig.parse({"timeout_ms": value})


@pytest.mark.parametrize("field", ["global_limits", "api_limits"])
@pytest.mark.parametrize("value", [{}, "x", None])
def test_limit_lists_must_be_lists(field, value):
    with pytest.raises(PolicyConfigError, match=rf"{field} must be a list"):
        RateLimitConfig.parse({field: value})


def test_limit_must_be_an_object():
    with pytest.raises(PolicyConfigError, match=r"global_limits\[1\] must be an object"):
        RateLimitConfig.parse({"global_limits": [FULL["global_limits"][0], "user_id"]})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("key", "", r"global_limits\[0\]\.key must be a non-empty string"),
    ("key", 5, r"global_limits\[0\]\.key must be a non-empty string"),
    ("max_requests", -1, r"global_limits\[0\]\.max_requests must be an integer >= 1"),
    ("max_requests", True, r"global_limits\[0\]\.max_requests must be an integer >= 1"),
    ("max_requests", 2.0, r"global_limits\[0\]\.max_requests must be an integer >= 1"),
    ("window_ms", 0, r"global_limits\[0\]\.window_ms must be an integer >= 1"),
    ("window_ms", "60000", r"global_limits\[0\]\.window_ms must be an integer >= 1"),
])
def test_bad_limit_values_refused_naming_the_field(field, value, message):
    limit = {**FULL["global_limits"][0], field: value}
    with pytest.raises(PolicyConfigError, match=message):
        RateLimitConfig.parse({"global_limits": [limit]})


@pytest.mark.parametrize("missing", ["key", "max_requests", "window_ms"])
def test_limit_fields_are_required(missing):
    limit = dict(FULL["global_limits"][0])
    del limit[missing]
    with pytest.raises(PolicyConfigError, match=rf"global_limits\[0\]\.{missing}"):
        RateLimitConfig.parse({"global_limits": [limit]})


def test_a_bad_merge_result_is_refused_too():
    with pytest.raises(PolicyConfigError, match="enabled"):
        RateLimitConfig.parse({"enabled": "no"}, RateLimitConfig.parse(FULL))


# ------------------------------------------------------------------ limits: window and scope


@pytest.mark.parametrize(("window_ms", "seconds"), [
    (1, 1), (999, 1), (1000, 1), (1001, 2), (1500, 2), (2000, 2), (60000, 60), (60001, 61)])
def test_window_rounded_up_to_whole_seconds(window_ms, seconds):
    assert Limit("user_id", 1, window_ms).window_seconds == seconds


def test_scope():
    assert Limit("user_id", 1, 1000).scope == "global"
    assert Limit("user_id", 1, 1000, service="s", request_type="r").scope == "s.r"


# ------------------------------------------------------------------ applicable


APPLICABLE = {
    "global_limits": [{"key": "user_id", "max_requests": 100, "window_ms": 60000},
                      {"key": "ip_address", "max_requests": 1000, "window_ms": 60000}],
    "api_limits": [{"service": "s", "request_type": "r", "key": "device_id", "max_requests": 3, "window_ms": 1000},
                   {"service": "s", "request_type": "other", "key": "user_id", "max_requests": 1, "window_ms": 1000},
                   {"service": "t", "request_type": "r", "key": "user_id", "max_requests": 2, "window_ms": 1000},
                   {"service": "s", "request_type": "r", "key": "account", "max_requests": 5, "window_ms": 1000}],
}


def test_applicable_is_global_then_the_functions_own_in_order():
    config = RateLimitConfig.parse(APPLICABLE)
    found = config.applicable("s", "r")
    assert [(limit.scope, limit.key) for limit in found] == [
        ("global", "user_id"), ("global", "ip_address"), ("s.r", "device_id"), ("s.r", "account")]


def test_applicable_to_a_function_without_its_own_limits_is_the_global_ones():
    config = RateLimitConfig.parse(APPLICABLE)
    assert config.applicable("nobody", "r") == config.global_limits


def test_applicable_matches_service_and_request_type_both():
    config = RateLimitConfig.parse(APPLICABLE)
    assert [limit.max_requests for limit in config.applicable("t", "r")] == [100, 1000, 2]
    assert [limit.max_requests for limit in config.applicable("s", "other")] == [100, 1000, 1]


def test_applicable_is_stable_across_calls():
    config = RateLimitConfig.parse(APPLICABLE)
    assert config.applicable("s", "r") == config.applicable("s", "r")
    assert config.applicable("t", "r") != config.applicable("s", "r")


def test_applicable_with_no_limits_is_empty():
    assert RateLimitConfig().applicable("s", "r") == ()


# ------------------------------------------------------------------ breakers


def test_breaker_defaults():
    config = BreakerConfig.parse({})
    assert config == BreakerConfig()
    assert config.to_json() == {"enabled": True, "service_threshold": 10, "worker_threshold": 5,
                                "cooldown_ms": 60000}


def test_breaker_partial_config_keeps_the_other_defaults():
    config = BreakerConfig.parse({"worker_threshold": 2, "cooldown_ms": 500})
    assert config == BreakerConfig(enabled=True, service_threshold=10, worker_threshold=2, cooldown_ms=500)


def test_breaker_full_config_round_trips():
    data = {"enabled": False, "service_threshold": 3, "worker_threshold": 1, "cooldown_ms": 1}
    assert BreakerConfig.parse(data).to_json() == data


def test_breaker_unknown_field_refused_by_name():
    with pytest.raises(PolicyConfigError, match="unknown field.*threshold"):
        BreakerConfig.parse({"threshold": 3})


@pytest.mark.parametrize("data", [[], "x", None])
def test_breaker_not_an_object_refused(data):
    with pytest.raises(PolicyConfigError, match="breakers must be a JSON object"):
        BreakerConfig.parse(data)


@pytest.mark.parametrize(("field", "value"), [
    ("service_threshold", 0), ("worker_threshold", -1), ("cooldown_ms", 0), ("cooldown_ms", 1.5),
    ("service_threshold", True), ("worker_threshold", "5"), ("cooldown_ms", None)])
def test_breaker_counts_must_be_positive_integers(field, value):
    with pytest.raises(PolicyConfigError, match=rf"breakers\.{field} must be an integer >= 1"):
        BreakerConfig.parse({field: value})


def test_breaker_enabled_must_be_a_boolean():
    with pytest.raises(PolicyConfigError, match=r"breakers\.enabled must be true or false"):
        BreakerConfig.parse({"enabled": "false"})

"""workers.settings: the registry settings (admin, push token, allowlist, pull mode, retention)."""

from __future__ import annotations

import pytest

from workers.allowlist import Allowlist
from workers.settings import ADMIN_ACTIONS, Settings, SettingsError

ALLOWED_ACTIONS = "change_detail_error, disable_tracing, enable_tracing, push_config, update_rate_limit_config"


def load(**env: str) -> Settings:
    return Settings.from_env(env)


def error(**env: str) -> str:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    return str(info.value)


def test_registry_defaults():
    s = Settings.from_env({})
    assert s.admin_token is None
    assert s.admin_actions == frozenset()
    assert s.push_token is None
    assert s.registration_allowlist is None
    assert s.service_configs == ()
    assert s.pull_interval == 30.0
    assert s.pull_timeout == 5.0
    assert s.registry_retention == 86400.0
    assert s == Settings()


# ---------------------------------------------------------------------- tokens


def test_admin_token():
    assert load(GENAPI_ADMIN_TOKEN="a-long-admin-token").admin_token == "a-long-admin-token"
    assert load(GENAPI_ADMIN_TOKEN="").admin_token is None


def test_push_token():
    assert load(GENAPI_PUSH_TOKEN="shared-push-secret").push_token == "shared-push-secret"
    assert load(GENAPI_PUSH_TOKEN="").push_token is None


# --------------------------------------------------------------- admin actions


def test_admin_actions_known_names():
    assert ADMIN_ACTIONS == frozenset({"change_detail_error", "update_rate_limit_config", "push_config",
                                      "enable_tracing", "disable_tracing"})


@pytest.mark.parametrize("raw, expected", [
    ("push_config", {"push_config"}),
    ("push_config,change_detail_error", {"push_config", "change_detail_error"}),
    (" push_config , change_detail_error ,", {"push_config", "change_detail_error"}),
    ("push_config,push_config", {"push_config"}),
    ('["push_config", "update_rate_limit_config"]', {"push_config", "update_rate_limit_config"}),
    ('  ["change_detail_error"]  ', {"change_detail_error"}),
    ("[]", set()),
    ("", set()),
    (" , ", set()),
])
def test_admin_actions_comma_list_or_json_array(raw, expected):
    actions = load(GENAPI_ADMIN_ACTIONS=raw).admin_actions
    assert isinstance(actions, frozenset)
    assert actions == frozenset(expected)


def test_admin_actions_every_one():
    assert load(GENAPI_ADMIN_ACTIONS=",".join(sorted(ADMIN_ACTIONS))).admin_actions == ADMIN_ACTIONS


def test_admin_actions_unknown_name_rejected():
    assert error(GENAPI_ADMIN_ACTIONS="push_config,delete_everything") == \
        f"GENAPI_ADMIN_ACTIONS: unknown name delete_everything (allowed: {ALLOWED_ACTIONS})"


def test_admin_actions_every_unknown_name_listed():
    assert error(GENAPI_ADMIN_ACTIONS='["list", "push_config", "disable"]') == \
        f"GENAPI_ADMIN_ACTIONS: unknown name list, disable (allowed: {ALLOWED_ACTIONS})"


@pytest.mark.parametrize("raw", ["[push_config]", '["push_config", 1]', '[["push_config"]]', "[", '[null]'])
def test_admin_actions_bad_json_array(raw):
    assert error(GENAPI_ADMIN_ACTIONS=raw) == \
        f"GENAPI_ADMIN_ACTIONS must be a comma-separated list or a JSON array of strings, got {raw!r}"


def test_admin_actions_are_case_sensitive():
    assert "unknown name PUSH_CONFIG" in error(GENAPI_ADMIN_ACTIONS="PUSH_CONFIG")


# ------------------------------------------------------------------- allowlist


def test_registration_allowlist_parsed():
    s = load(GENAPI_REGISTRATION_ALLOWLIST='{"services": ["billing"], "callables": ["myapp.hooks"]}')
    assert s.registration_allowlist == Allowlist(services=frozenset({"billing"}),
                                                 callables=frozenset({"myapp.hooks"}))


def test_registration_allowlist_empty_object_is_an_unrestricted_allowlist():
    assert load(GENAPI_REGISTRATION_ALLOWLIST="{}").registration_allowlist == Allowlist()


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_blank_registration_allowlist_means_none(raw):
    assert load(GENAPI_REGISTRATION_ALLOWLIST=raw).registration_allowlist is None


def test_invalid_registration_allowlist_names_the_variable():
    assert error(GENAPI_REGISTRATION_ALLOWLIST='["bill ing"]') == (
        "GENAPI_REGISTRATION_ALLOWLIST must be a JSON object, or a list of names (services, service.function, "
        "module or module:function), got '[\"bill ing\"]'")


def test_registration_allowlist_as_a_flat_list():
    allowlist = load(GENAPI_REGISTRATION_ALLOWLIST="billing,ops.restart").registration_allowlist
    assert allowlist.services == frozenset({"billing", "ops.restart"}) == allowlist.callables


@pytest.mark.parametrize("raw, detail", [
    ("{not json", 'must be a JSON object such as {"services": ["billing"]} ('),
    ('{"nodes": []}', "unknown key nodes (allowed: services, functions, callables)"),
    ('{"services": "billing"}', "'services' must be a list of non-empty strings"),
])
def test_registration_allowlist_errors_carry_the_parse_message(raw, detail):
    message = error(GENAPI_REGISTRATION_ALLOWLIST=raw)
    assert message.startswith("GENAPI_REGISTRATION_ALLOWLIST "), message
    assert detail in message


def test_registration_allowlist_error_is_a_value_error():
    with pytest.raises(ValueError):
        Settings.from_env({"GENAPI_REGISTRATION_ALLOWLIST": "[1]"})


# ------------------------------------------------------------- service configs


@pytest.mark.parametrize("raw, expected", [
    ("billing", ("billing",)),
    ("billing,users", ("billing", "users")),
    (" billing , users , billing ,", ("billing", "users")),
    ('["users", "billing"]', ("users", "billing")),
    ("", ()),
])
def test_service_configs(raw, expected):
    assert load(GENAPI_SERVICE_CONFIGS=raw).service_configs == expected


def test_service_configs_bad_json_array():
    assert error(GENAPI_SERVICE_CONFIGS='["billing", 2]') == \
        "GENAPI_SERVICE_CONFIGS must be a comma-separated list or a JSON array of strings, got '[\"billing\", 2]'"


# ------------------------------------------------------------------- durations


DURATIONS = ["GENAPI_PULL_INTERVAL", "GENAPI_PULL_TIMEOUT", "GENAPI_REGISTRY_RETENTION"]
ATTRIBUTE = {"GENAPI_PULL_INTERVAL": "pull_interval", "GENAPI_PULL_TIMEOUT": "pull_timeout",
             "GENAPI_REGISTRY_RETENTION": "registry_retention"}


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("raw, seconds", [
    ("2", 2.0),
    ("2.5", 2.5),
    ("1500ms", 1.5),
    ("30s", 30.0),
    ("2m", 120.0),
    (" 3s ", 3.0),
    ("4 s", 4.0),
])
def test_duration_units(name, raw, seconds):
    assert getattr(load(**{name: raw}), ATTRIBUTE[name]) == pytest.approx(seconds)


@pytest.mark.parametrize("name, default", [("GENAPI_PULL_INTERVAL", 30.0), ("GENAPI_PULL_TIMEOUT", 5.0),
                                           ("GENAPI_REGISTRY_RETENTION", 86400.0)])
@pytest.mark.parametrize("raw", ["", "  "])
def test_blank_duration_uses_default(name, default, raw):
    assert getattr(load(**{name: raw}), ATTRIBUTE[name]) == default


def test_bare_number_is_seconds():
    assert load(GENAPI_PULL_INTERVAL="45").pull_interval == 45.0
    assert load(GENAPI_PULL_TIMEOUT="0.5").pull_timeout == 0.5


def test_milliseconds():
    assert load(GENAPI_PULL_INTERVAL="500ms").pull_interval == pytest.approx(0.5)
    assert load(GENAPI_PULL_TIMEOUT="100ms").pull_timeout == pytest.approx(0.1)


def test_minutes_and_hours():
    assert load(GENAPI_PULL_INTERVAL="5m").pull_interval == 300.0
    assert load(GENAPI_REGISTRY_RETENTION="24h").registry_retention == 86400.0
    assert load(GENAPI_REGISTRY_RETENTION="1.5h").registry_retention == 5400.0
    assert load(GENAPI_PULL_INTERVAL="24h").pull_interval == 86400.0


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("raw", ["abc", "5 minutes", "-1", "-5s", "1d", "m", "s", "1.5.2", "1e3", "30S", "5 m s",
                                 "inf", "nan", "0x10", "1,5"])
def test_bad_duration_rejected(name, raw):
    assert error(**{name: raw}) == \
        f"{name} must be a duration such as 30, 30s, 500ms, 5m or 24h, got {raw!r}"


@pytest.mark.parametrize("name, raw, low, high", [
    ("GENAPI_PULL_INTERVAL", "50ms", "0.1s", "86400s"),
    ("GENAPI_PULL_INTERVAL", "0", "0.1s", "86400s"),
    ("GENAPI_PULL_INTERVAL", "25h", "0.1s", "86400s"),
    ("GENAPI_PULL_INTERVAL", "86401", "0.1s", "86400s"),
    ("GENAPI_PULL_TIMEOUT", "99ms", "0.1s", "300s"),
    ("GENAPI_PULL_TIMEOUT", "6m", "0.1s", "300s"),
    ("GENAPI_PULL_TIMEOUT", "301", "0.1s", "300s"),
])
def test_duration_out_of_bounds(name, raw, low, high):
    assert error(**{name: raw}) == f"{name} must be between {low} and {high}, got {raw!r}"


@pytest.mark.parametrize("raw", ["500ms", "0", "0.9", "8761h", "525601m", "31536001"])
def test_retention_out_of_bounds(raw):
    message = error(GENAPI_REGISTRY_RETENTION=raw)
    assert message.startswith("GENAPI_REGISTRY_RETENTION must be between 1s and "), message
    assert message.endswith(f", got {raw!r}")


@pytest.mark.parametrize("name, raw, seconds", [
    ("GENAPI_PULL_INTERVAL", "100ms", 0.1),
    ("GENAPI_PULL_INTERVAL", "86400", 86400.0),
    ("GENAPI_PULL_TIMEOUT", "0.1", 0.1),
    ("GENAPI_PULL_TIMEOUT", "5m", 300.0),
    ("GENAPI_REGISTRY_RETENTION", "1", 1.0),
    ("GENAPI_REGISTRY_RETENTION", "1000ms", 1.0),
    ("GENAPI_REGISTRY_RETENTION", "8760h", 365 * 86400.0),
])
def test_duration_bounds_are_inclusive(name, raw, seconds):
    assert getattr(load(**{name: raw}), ATTRIBUTE[name]) == pytest.approx(seconds)


def test_out_of_bounds_message_strips_whitespace():
    assert error(GENAPI_PULL_TIMEOUT="  10m ") == "GENAPI_PULL_TIMEOUT must be between 0.1s and 300s, got '10m'"


# ------------------------------------------------------------------------ repr


SECRETS = {"GENAPI_SECRET_KEY": "secret-key-XYZZY-1", "GENAPI_PUSH_TOKEN": "push-token-PLUGH-2",
           "GENAPI_ADMIN_TOKEN": "admin-token-FROBOZZ-3"}


def test_repr_hides_every_secret():
    s = Settings(secret_key="secret-key-XYZZY-1", push_token="push-token-PLUGH-2",
                 admin_token="admin-token-FROBOZZ-3", admin_actions=frozenset({"push_config"}))
    for text in (repr(s), str(s)):
        for secret in SECRETS.values():
            assert secret not in text
    assert "push_config" in repr(s)  # the rest is still shown


def test_repr_of_settings_from_env_hides_every_secret():
    s = Settings.from_env({**SECRETS, "GENAPI_REGISTRATION_ALLOWLIST": '{"services": ["billing"]}'})
    assert (s.secret_key, s.push_token, s.admin_token) == tuple(SECRETS.values())
    text = repr(s)
    for secret in SECRETS.values():
        assert secret not in text
    assert "billing" in text


def test_replace_keeps_secrets_out_of_repr():
    s = Settings().replace(push_token="push-token-PLUGH-2", admin_token="admin-token-FROBOZZ-3")
    assert "PLUGH" not in repr(s) and "FROBOZZ" not in repr(s)


@pytest.mark.parametrize(("raw", "expected"), [
    ('[{"service": "reports", "nodes": ["a@h"], "module": "x"}, {"service": "archive"}]', ("reports", "archive")),
    ('[{"service": "reports"}, {"service": "reports"}]', ("reports",)),
])
def test_service_configs_accept_the_originals_objects(raw, expected):
    assert load(GENAPI_SERVICE_CONFIGS=raw).service_configs == expected


def test_service_config_objects_need_a_service_name():
    assert error(GENAPI_SERVICE_CONFIGS='[{"nodes": ["a@h"]}]') == \
        'GENAPI_SERVICE_CONFIGS: every object needs a "service" name'


def test_admin_actions_written_as_elixir_atoms():
    assert load(GENAPI_ADMIN_ACTIONS=":push_config, :change_detail_error").admin_actions == frozenset(
        {"push_config", "change_detail_error"})

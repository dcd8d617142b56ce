"""Pure helpers of the registry: push checks, pull back-off, retention sweeps, URL redaction,
loopback detection, the admin bearer token, and the registry's key fields."""

from __future__ import annotations

import flask
import pytest

from gateway_app.admin_cli import redact_url
from gateway_app.admin_http import bearer_matches
from gateway_app.cli import is_loopback
from gateway_app.puller import MAX_BACKOFF, next_delay
from gateway_app.receiver import structural_problems
from gateway_app.retention import sweep_interval
from workers.protocol import Keys, task_name

SERVICE = "service must not be nil"
NODES = "nodes must be a non-empty list of atoms or strings"
VERSION = "config_version must be a non-empty string"
CONFIGS = "fun_configs must be a non-empty list of FunConfig structs"
SAME_SERVICE = "all fun_configs must have the same service name as the push config"


def push(**changes) -> dict:
    data = {"service": "billing", "nodes": ["genapi-1@host"], "config_version": "v1",
            "fun_configs": [{"service": "billing", "request_type": "charge"}]}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not ...}


# ---------------------------------------------------------- structural_problems


def test_well_formed_push_has_no_problems():
    assert structural_problems(push()) == []


def test_config_without_service_takes_the_push_service():
    assert structural_problems(push(fun_configs=[{"request_type": "charge"}])) == []


def test_empty_push_lists_every_problem_in_reference_order():
    assert structural_problems({}) == [SERVICE, NODES, VERSION, CONFIGS]


@pytest.mark.parametrize("value", [..., None, "", 5, ["billing"]])
def test_bad_service(value):
    assert structural_problems(push(service=value, fun_configs=[{"request_type": "charge"}])) == [SERVICE]


def test_empty_service_also_differs_from_the_configs_service():
    assert structural_problems(push(service="")) == [SERVICE, SAME_SERVICE]


@pytest.mark.parametrize("value", [..., None, [], "genapi-1@host", ["ok", ""], ["ok", 5], [None], {"n": 1}])
def test_bad_nodes(value):
    assert structural_problems(push(nodes=value)) == [NODES]


def test_several_nodes_are_fine():
    assert structural_problems(push(nodes=["a@h", "b@h"])) == []


@pytest.mark.parametrize("value", [..., None, "", 1, ["v1"]])
def test_bad_config_version(value):
    assert structural_problems(push(config_version=value)) == [VERSION]


@pytest.mark.parametrize("value", [..., None, [], {"request_type": "x"}, ["x"], [{"request_type": "x"}, None]])
def test_bad_fun_configs(value):
    assert structural_problems(push(fun_configs=value)) == [CONFIGS]


def test_config_of_another_service():
    configs = [{"service": "billing", "request_type": "a"}, {"service": "users", "request_type": "b"}]
    assert structural_problems(push(fun_configs=configs)) == [SAME_SERVICE]


def test_service_mismatch_not_checked_without_a_service():
    configs = [{"service": "users", "request_type": "b"}]
    assert structural_problems(push(service=None, fun_configs=configs)) == [SERVICE]


def test_problems_keep_their_order():
    assert structural_problems(push(service="", config_version="")) == [SERVICE, VERSION, SAME_SERVICE]
    assert structural_problems(push(service=None, config_version="")) == [SERVICE, VERSION]
    assert structural_problems(push(nodes=[], fun_configs=[])) == [NODES, CONFIGS]
    assert structural_problems(push(config_version=None, fun_configs=[{"service": "x"}])) == [VERSION, SAME_SERVICE]


# --------------------------------------------------------------------- next_delay


@pytest.mark.parametrize("failures", [0, -1])
def test_no_failure_waits_the_interval(failures):
    assert next_delay(30.0, failures) == 30.0


@pytest.mark.parametrize("failures, delay", [(1, 60.0), (2, 120.0), (3, 240.0), (4, 300.0), (10, 300.0),
                                             (100, 300.0)])
def test_delay_doubles_per_failed_round_up_to_300s(failures, delay):
    assert next_delay(30.0, failures) == delay


def test_backoff_cap_is_300_seconds():
    assert MAX_BACKOFF == 300.0
    assert next_delay(0.1, 50) == 300.0


@pytest.mark.parametrize("interval", [600.0, 3600.0])
@pytest.mark.parametrize("failures", [0, 1, 5])
def test_interval_above_the_cap_is_not_shortened(interval, failures):
    assert next_delay(interval, failures) == interval


def test_interval_just_below_the_cap_is_capped():
    assert next_delay(200.0, 1) == 300.0
    assert next_delay(300.0, 3) == 300.0


# ------------------------------------------------------------------ sweep_interval


@pytest.mark.parametrize("retention, interval", [
    (86400.0, 60.0),
    (240.0, 60.0),
    (239.0, 59.75),
    (100.0, 25.0),
    (4.0, 1.0),
    (2.0, 0.5),
    (1.0, 0.5),
])
def test_sweep_interval(retention, interval):
    assert sweep_interval(retention) == interval


def test_sweep_interval_is_a_quarter_of_retention_between_bounds():
    for retention in (3.0, 10.0, 60.0, 200.0):
        assert sweep_interval(retention) == retention / 4


# ------------------------------------------------------------------- redact_url


@pytest.mark.parametrize("url, shown", [
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("redis://user:s3cret@cache:6379/0", "redis://user:***@cache:6379/0"),
    ("rediss://user:p%40ss@cache/1", "rediss://user:***@cache/1"),
    ("redis://user:pa@ss@cache/1", "redis://user:***@cache/1"),
    ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
])
def test_redact_url_hides_the_password(url, shown):
    assert redact_url(url) == shown


@pytest.mark.parametrize("url", ["redis://cache:6379/0", "redis://user@cache/0", "unix:///tmp/redis.sock",
                                 "redis://127.0.0.1:6379/0", "unix:///tmp/redis.sock?db=2"])
def test_redact_url_without_password_unchanged(url):
    assert redact_url(url) == url


@pytest.mark.parametrize("url", ["unix:///tmp/redis.sock?db=0&password=s3cret",
                                 "redis://cache:6379/0?password=s3cret"])
def test_redact_url_hides_a_password_given_as_a_query_parameter(url):
    # redis-py reads ``?password=`` (its documented form for unix:// sockets)
    assert "s3cret" not in redact_url(url)


# ------------------------------------------------------------------- is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host) is True


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.1", "example.com",
                                  "gateway.internal", "", "localhost.example.com"])
def test_non_loopback_hosts(host):
    assert is_loopback(host) is False


# ---------------------------------------------------------------- bearer_matches


TOKEN = "admin-token-0123456789"
app = flask.Flask(__name__)


def matches(token: str | None, **headers: str) -> bool:
    with app.test_request_context(headers=headers):
        return bearer_matches(flask.request, token)


def test_right_token_matches():
    assert matches(TOKEN, Authorization=f"Bearer {TOKEN}") is True


def test_scheme_is_case_insensitive():
    assert matches(TOKEN, Authorization=f"bearer {TOKEN}") is True
    assert matches(TOKEN, Authorization=f"BEARER {TOKEN}") is True


@pytest.mark.parametrize("header", [
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    "Bearer wrong",
    f"Bearer {TOKEN.upper()}",
    "Bearer ",
    "Bearer",
    "",
])
def test_wrong_token_refused(header):
    assert matches(TOKEN, Authorization=header) is False


def test_missing_header_refused():
    assert matches(TOKEN) is False


@pytest.mark.parametrize("header", [f"Basic {TOKEN}", f"Token {TOKEN}", TOKEN, f"Bearer:{TOKEN}"])
def test_other_scheme_refused(header):
    assert matches(TOKEN, Authorization=header) is False


@pytest.mark.parametrize("configured", [None, ""])
def test_no_token_configured_refuses_everything(configured):
    assert matches(configured, Authorization="Bearer ") is False
    assert matches(configured, Authorization="Bearer anything") is False
    assert matches(configured) is False


# -------------------------------------------------------------------- Keys fields


@pytest.mark.parametrize("key, field", [
    (("billing", "charge", "1.0.0"), "billing|charge|1.0.0"),
    (("billing", "charge", None), "billing|charge|"),
    (("a.b", "c-d", "2.0.0-rc.1+build"), "a.b|c-d|2.0.0-rc.1+build"),
])
def test_function_field_round_trip(key, field):
    assert Keys.function_field(*key) == field
    assert Keys.parse_field(field) == key


def test_empty_version_field_parses_as_none():
    assert Keys.function_field("s", "f", "") == "s|f|"
    assert Keys.parse_field("s|f|") == ("s", "f", None)


def test_parse_field_keeps_separators_in_the_version():
    assert Keys.parse_field("s|f|1|2") == ("s", "f", "1|2")
    assert Keys.parse_field(Keys.function_field("s", "f", "1|2")) == ("s", "f", "1|2")


def test_parse_field_rejects_a_field_without_three_parts():
    with pytest.raises(ValueError):
        Keys.parse_field("s|f")


@pytest.mark.parametrize("service, request_type, version, name", [
    ("billing", "charge", "1.0.0", "billing.charge@1.0.0"),
    ("billing", "charge", None, "billing.charge"),
    ("billing", "charge", "", "billing.charge"),
])
def test_task_name(service, request_type, version, name):
    assert task_name(service, request_type, version) == name


def test_task_name_of_a_parsed_field():
    assert task_name(*Keys.parse_field("billing|charge|2.0.0")) == "billing.charge@2.0.0"
    assert task_name(*Keys.parse_field("billing|charge|")) == "billing.charge"


def test_registry_key_names_use_the_prefix():
    keys = Keys("app:")
    assert (keys.functions, keys.pushed, keys.push_inbox, keys.seen) == \
        ("app:functions", "app:pushed", "app:push:inbox", "app:seen")
    assert keys.push_result("p1") == "app:push:result:p1"
    assert keys.pull_reply("r1") == "app:pull:reply:r1"
    assert keys.lease("retention") == "app:lease:retention"

"""workers.settings: Settings.from_env with explicit environments."""

from __future__ import annotations

import os

import pytest

from workers.settings import DEV_SECRET_KEY, Settings, SettingsError


def test_defaults():
    s = Settings.from_env({})
    assert s == Settings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.broker_url == s.redis_url
    assert s.secret_key == DEV_SECRET_KEY and s.uses_dev_secret
    assert s.port == 8000
    assert s.max_payload_bytes == 1_000_000
    assert s.detail_error is False and s.public_ws is False
    assert s.authenticator == "gateway_app.auth:token_authenticator"
    assert s.key_prefix == "genapi:"
    assert (s.heartbeat_interval, s.node_ttl, s.refresh_interval) == (2.0, 6.0, 30.0)


def test_unrelated_variables_ignored():
    assert Settings.from_env({"PATH": "/bin", "GENAPI_UNKNOWN": "x"}) == Settings()


def test_every_variable_parsed():
    env = {
        "GENAPI_REDIS_URL": "redis://cache:6380/2",
        "GENAPI_BROKER_URL": "amqp://guest@rabbit//",
        "GENAPI_SECRET_KEY": "s3cret",
        "GENAPI_PORT": "9001",
        "GENAPI_MAX_PAYLOAD_BYTES": "2048",
        "GENAPI_DETAIL_ERROR": "true",
        "GENAPI_PUBLIC_WS": "on",
        "GENAPI_AUTHENTICATOR": "pkg.auth:check",
        "GENAPI_KEY_PREFIX": "app:",
        "GENAPI_HEARTBEAT_MS": "500",
        "GENAPI_NODE_TTL_MS": "1500",
        "GENAPI_REFRESH_MS": "1000",
    }
    s = Settings.from_env(env)
    assert s == Settings(
        redis_url="redis://cache:6380/2", broker_url="amqp://guest@rabbit//", secret_key="s3cret", port=9001,
        max_payload_bytes=2048, detail_error=True, public_ws=True, authenticator="pkg.auth:check",
        key_prefix="app:", heartbeat_interval=0.5, node_ttl=1.5, refresh_interval=1.0,
    )
    assert not s.uses_dev_secret


def test_broker_defaults_to_redis_url():
    s = Settings.from_env({"GENAPI_REDIS_URL": "rediss://secure:6379/1"})
    assert s.broker_url == "rediss://secure:6379/1"
    assert Settings.from_env({"GENAPI_REDIS_URL": "redis://x/3", "GENAPI_BROKER_URL": ""}).broker_url == "redis://x/3"


@pytest.mark.parametrize("url", ["redis://h/0", "rediss://h/0", "unix:///tmp/redis.sock"])
def test_redis_url_schemes(url):
    assert Settings.from_env({"GENAPI_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url", ["amqp://h//", "amqps://h//", "pyamqp://h//", "redis://h/1"])
def test_broker_url_schemes(url):
    assert Settings.from_env({"GENAPI_BROKER_URL": url}).broker_url == url


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENAPI_REDIS_URL", "http://localhost:6379"),
        ("GENAPI_REDIS_URL", "localhost:6379"),
        ("GENAPI_REDIS_URL", "amqp://h//"),
        ("GENAPI_BROKER_URL", "kafka://h"),
        ("GENAPI_BROKER_URL", "rabbit"),
    ],
)
def test_bad_urls(name, value):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert str(info.value).startswith(f"{name} must be a URL starting with")
    assert repr(value) in str(info.value)


def test_empty_values_use_defaults():
    env = {"GENAPI_REDIS_URL": "  ", "GENAPI_SECRET_KEY": "", "GENAPI_PORT": "", "GENAPI_AUTHENTICATOR": "",
           "GENAPI_HEARTBEAT_MS": " ", "GENAPI_DETAIL_ERROR": ""}
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
@pytest.mark.parametrize(("name", "attr"), [("GENAPI_DETAIL_ERROR", "detail_error"),
                                            ("GENAPI_PUBLIC_WS", "public_ws")])
def test_flags_true(name, attr, value):
    assert getattr(Settings.from_env({name: value}), attr) is True


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "off", ""])
@pytest.mark.parametrize(("name", "attr"), [("GENAPI_DETAIL_ERROR", "detail_error"),
                                            ("GENAPI_PUBLIC_WS", "public_ws")])
def test_flags_false(name, attr, value):
    assert getattr(Settings.from_env({name: value}), attr) is False


@pytest.mark.parametrize("name", ["GENAPI_DETAIL_ERROR", "GENAPI_PUBLIC_WS"])
@pytest.mark.parametrize("value", ["maybe", "2", "y", "enabled"])
def test_bad_flags(name, value):
    with pytest.raises(SettingsError, match=f"^{name} must be 1/0, true/false"):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENAPI_PORT", "abc"),
        ("GENAPI_PORT", "80.5"),
        ("GENAPI_MAX_PAYLOAD_BYTES", "1MB"),
        ("GENAPI_HEARTBEAT_MS", "fast"),
        ("GENAPI_NODE_TTL_MS", "x"),
        ("GENAPI_REFRESH_MS", "1e3"),
    ],
)
def test_integers_must_be_integers(name, value):
    with pytest.raises(SettingsError, match=f"^{name} must be an integer, got '{value}'"):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("GENAPI_PORT", 1, 65535),
        ("GENAPI_MAX_PAYLOAD_BYTES", 64, 512 * 1024 * 1024),
        ("GENAPI_HEARTBEAT_MS", 100, 60_000),
        ("GENAPI_REFRESH_MS", 500, 3_600_000),
    ],
)
def test_integer_bounds(name, low, high):
    Settings.from_env({name: str(low)})
    Settings.from_env({name: str(high)})
    for value in (low - 1, high + 1):
        with pytest.raises(SettingsError, match=f"^{name} must be between {low} and {high}, got {value}"):
            Settings.from_env({name: str(value)})


def test_integer_values():
    s = Settings.from_env({"GENAPI_PORT": " 8080 ", "GENAPI_MAX_PAYLOAD_BYTES": "64", "GENAPI_REFRESH_MS": "500"})
    assert (s.port, s.max_payload_bytes, s.refresh_interval) == (8080, 64, 0.5)


def test_node_ttl_bounds():
    assert Settings.from_env({"GENAPI_NODE_TTL_MS": "600000"}).node_ttl == 600.0
    with pytest.raises(SettingsError, match="GENAPI_NODE_TTL_MS must be between 300 and 600000"):
        Settings.from_env({"GENAPI_NODE_TTL_MS": "299"})
    with pytest.raises(SettingsError, match="GENAPI_NODE_TTL_MS must be between"):
        Settings.from_env({"GENAPI_NODE_TTL_MS": "600001"})


def test_node_ttl_defaults_to_three_heartbeats():
    s = Settings.from_env({"GENAPI_HEARTBEAT_MS": "1000"})
    assert (s.heartbeat_interval, s.node_ttl) == (1.0, 3.0)
    s = Settings.from_env({"GENAPI_HEARTBEAT_MS": "100"})
    assert (s.heartbeat_interval, s.node_ttl) == (0.1, 0.3)


@pytest.mark.parametrize(("heartbeat", "ttl"), [("2000", "2000"), ("2000", "1000"), ("5000", "300")])
def test_node_ttl_must_exceed_heartbeat(heartbeat, ttl):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"GENAPI_HEARTBEAT_MS": heartbeat, "GENAPI_NODE_TTL_MS": ttl})
    message = str(info.value)
    assert message == (f"GENAPI_NODE_TTL_MS ({ttl}) must be greater than GENAPI_HEARTBEAT_MS ({heartbeat})")


def test_node_ttl_just_above_heartbeat():
    s = Settings.from_env({"GENAPI_HEARTBEAT_MS": "2000", "GENAPI_NODE_TTL_MS": "2001"})
    assert s.node_ttl == 2.001


def test_empty_key_prefix_rejected():
    with pytest.raises(SettingsError, match="GENAPI_KEY_PREFIX"):
        Settings.from_env({"GENAPI_KEY_PREFIX": ""})


def test_from_env_reads_os_environ_by_default(monkeypatch):
    for name in [n for n in os.environ if n.startswith("GENAPI_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GENAPI_PORT", "8123")
    assert Settings.from_env().port == 8123


def test_replace():
    s = Settings.from_env({})
    t = s.replace(port=1234)
    assert t.port == 1234 and s.port == 8000
    assert t.redis_url == s.redis_url


def test_websocket_compression_flag():
    assert Settings.from_env({}).ws_compression is False
    assert Settings.from_env({"GENAPI_WS_COMPRESSION": "on"}).ws_compression is True

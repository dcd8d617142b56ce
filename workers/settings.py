"""Settings shared by the gateway and the workers, read once from the environment.

Every setting has a working default for ``genapi dev``. :func:`Settings.from_env` validates
the values and raises :class:`SettingsError` naming the variable when one is wrong, so a
typo fails at start-up instead of at the first request.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .allowlist import Allowlist
from .policy_config import BreakerConfig, PolicyConfigError, RateLimitConfig

log = logging.getLogger(__name__)

DEV_SECRET_KEY = "genapi-insecure-development-key"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable holds a value CeleryGenApi cannot use."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = (env.get(name) or "").strip() or default
    if not value.startswith(tuple(s + "://" for s in schemes)):
        starts = " or ".join(s + "://" for s in schemes)
        raise SettingsError(f"{name} must be a URL starting with {starts}, got {value!r}")
    return value


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: float) -> str:
    return f"{value:g}s" if value < 100_000 else f"{value:.0f}s"


def _duration(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A duration in seconds: ``30``, ``1.5``, ``500ms``, ``30s``, ``5m``, ``24h`` (no unit: seconds)."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    match = _DURATION.fullmatch(raw)
    if not match:
        raise SettingsError(f"{name} must be a duration such as 30, 30s, 500ms, 5m or 24h, got {raw!r}")
    value = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {_seconds(low)} and {_seconds(high)}, got {raw.strip()!r}")
    return value


def _names(env: Mapping[str, str], name: str, allowed: frozenset[str] | None = None) -> tuple[str, ...]:
    """A comma-separated list (a JSON array of strings is accepted too)."""
    raw = (env.get(name) or "").strip()
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except ValueError:
            items = None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise SettingsError(f"{name} must be a comma-separated list or a JSON array of strings, got {raw!r}")
    else:
        items = raw.split(",")
    names = tuple(dict.fromkeys(i.strip().lstrip(":") for i in items if i.strip().lstrip(":")))
    if allowed is not None:
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise SettingsError(f"{name}: unknown name {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    return names


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or "").strip().lower() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {env.get(name)!r}")
    return value


def _basic_auth(env: Mapping[str, str]) -> str | None:
    """``GENAPI_FLOWER_BASIC_AUTH``: ``user:password`` pairs, comma-separated (Flower's format)."""
    raw = (env.get("GENAPI_FLOWER_BASIC_AUTH") or "").strip()
    if not raw:
        return None
    for pair in raw.split(","):
        user, _, password = pair.partition(":")
        if not user.strip() or not password:
            # never echo the value: it holds a password
            raise SettingsError("GENAPI_FLOWER_BASIC_AUTH must be user:password (comma-separated for several users)")
    return raw


def _service_configs(env: Mapping[str, str]) -> tuple[str, ...]:
    """``GENAPI_SERVICE_CONFIGS``: service names, comma-separated or as a JSON array; the
    array may also hold the original's service-config objects (only ``service`` is used:
    the gateway finds the nodes itself)."""
    raw = (env.get("GENAPI_SERVICE_CONFIGS") or "").strip()
    if raw.startswith("["):
        try:
            items = json.loads(raw)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(i, dict) for i in items):
            if all(isinstance(i.get("service"), str) and i["service"] for i in items):
                return tuple(dict.fromkeys(i["service"] for i in items))
            raise SettingsError("GENAPI_SERVICE_CONFIGS: every object needs a \"service\" name")
    return _names(env, "GENAPI_SERVICE_CONFIGS")


def _policy(env: Mapping[str, str], name: str, parse):
    """A JSON policy setting (``GENAPI_RATE_LIMITS``, ``GENAPI_BREAKERS``), or ``None``."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} is not valid JSON ({exc})") from None
    try:
        return parse(data)
    except PolicyConfigError as exc:
        raise SettingsError(f"{name}: {exc}") from None


#: Admin actions that need their name in ``GENAPI_ADMIN_ACTIONS`` besides the admin token
#: (reference §13.1): the sensitive ones. Listing, enabling, disabling, deleting and
#: resetting a rate limit need the token only. The original's tracing actions are accepted
#: so a ported configuration loads, but nothing here traces yet.
ADMIN_ACTIONS = frozenset({"change_detail_error", "update_rate_limit_config", "push_config", "enable_tracing",
                           "disable_tracing"})


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :meth:`from_env`; pass it down, never re-read."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = "redis://127.0.0.1:6379/0"
    secret_key: str = field(default=DEV_SECRET_KEY, repr=False)
    port: int = 8000
    max_payload_bytes: int = 1_000_000
    detail_error: bool = False
    public_ws: bool = False
    ws_compression: bool = False
    authenticator: str = "gateway_app.auth:token_authenticator"
    key_prefix: str = "genapi:"
    heartbeat_interval: float = 2.0
    node_ttl: float = 6.0
    refresh_interval: float = 30.0
    #: bearer token of the admin HTTP API; ``None`` switches the API off (404)
    admin_token: str | None = field(default=None, repr=False)
    #: sensitive admin actions allowed over HTTP (default none: fail closed)
    admin_actions: frozenset[str] = frozenset()
    #: shared secret workers sign their pushes with; ``None`` accepts unsigned pushes
    push_token: str | None = field(default=None, repr=False)
    registration_allowlist: Allowlist | None = None
    #: services the gateway pulls configs from (pull mode)
    service_configs: tuple[str, ...] = ()
    pull_interval: float = 30.0
    pull_timeout: float = 5.0
    #: a function no live worker has served for this long leaves the registry
    registry_retention: float = 86400.0
    #: bytes of frames one connection may have waiting to be written
    outbound_queue_bytes: int = 8 * 1024 * 1024
    #: calls dispatched on one connection and not yet answered; more are refused (0: no cap)
    max_in_flight: int = 1000
    #: messages a service's (or a worker's) queue may hold; more calls are refused (0: no limit)
    max_queue_length: int = 10_000
    #: ``GENAPI_RATE_LIMITS`` (none by default: costs nothing); operators may replace it at runtime
    rate_limits: RateLimitConfig = RateLimitConfig()
    #: the Redis the rate limiter keeps its windows in (``None``: ``redis_url``)
    rate_limit_redis_url: str | None = None
    #: a header set by a trusted reverse proxy carrying the client address (its last entry)
    trusted_proxy_header: str | None = None
    breakers: BreakerConfig = BreakerConfig()
    #: gateway-level hooks (``module:function``), run around every call
    before_execute: tuple[str, ...] = ()
    after_execute: tuple[str, ...] = ()
    hook_timeout_ms: int = 5000
    #: relay groups: largest message (JSON bytes), groups per connection, gateway heartbeat TTL (s)
    relay_max_message_bytes: int = 65536
    relay_max_groups: int = 100
    relay_ttl: float = 30.0
    #: workers send Celery task events even with no Flower running (``GENAPI_TASK_EVENTS``)
    task_events: bool = False
    #: who may read ``GET /metrics``: ``open``, ``token`` (the admin token) or ``off``
    metrics: str = "open"
    #: ``text`` (human-readable) or ``json`` (one JSON object per line) log lines
    log_format: str = "text"
    #: the gateway's log level (a worker's is Celery's ``-l``)
    log_level: str = "info"
    #: ``module:function`` receivers of every telemetry event, loaded at start
    telemetry_receivers: tuple[str, ...] = ()
    #: Flower's ``user:password`` (``GENAPI_FLOWER_BASIC_AUTH``); handed to Flower through its environment
    flower_basic_auth: str | None = field(default=None, repr=False)
    #: OpenTelemetry spans per call (needs the ``otel`` extra)
    otel: bool = False
    #: serve the try-it page at ``/`` and the browser client at ``/static/genapi.js``
    try_page: bool = False
    #: the token the try-it page signs in with by default, offered to loopback clients only (``genapi dev``)
    try_page_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every ``GENAPI_*`` variable (``os.environ`` by default)."""
        env = os.environ if env is None else env
        redis_url = _url(env, "GENAPI_REDIS_URL", cls.redis_url, ("redis", "rediss", "unix"))
        broker_url = _url(env, "GENAPI_BROKER_URL", redis_url, ("redis", "rediss", "unix", "amqp", "amqps", "pyamqp"))
        secret = env.get("GENAPI_SECRET_KEY") or DEV_SECRET_KEY
        heartbeat_ms = _integer(env, "GENAPI_HEARTBEAT_MS", 2000, 100, 60_000)
        ttl_ms = _integer(env, "GENAPI_NODE_TTL_MS", 3 * heartbeat_ms, 300, 600_000)
        if ttl_ms <= heartbeat_ms:
            raise SettingsError(
                f"GENAPI_NODE_TTL_MS ({ttl_ms}) must be greater than GENAPI_HEARTBEAT_MS ({heartbeat_ms})"
            )
        prefix = env.get("GENAPI_KEY_PREFIX", cls.key_prefix)
        if not prefix:
            raise SettingsError("GENAPI_KEY_PREFIX must not be empty")
        allowlist = None
        if (env.get("GENAPI_REGISTRATION_ALLOWLIST") or "").strip():
            try:
                allowlist = Allowlist.parse(env["GENAPI_REGISTRATION_ALLOWLIST"])
            except ValueError as exc:
                raise SettingsError(f"GENAPI_REGISTRATION_ALLOWLIST {exc}") from None
        return cls(
            redis_url=redis_url,
            broker_url=broker_url,
            secret_key=secret,
            port=_integer(env, "GENAPI_PORT", cls.port, 1, 65535),
            max_payload_bytes=_integer(env, "GENAPI_MAX_PAYLOAD_BYTES", cls.max_payload_bytes, 64, 512 * 1024 * 1024),
            detail_error=_flag(env, "GENAPI_DETAIL_ERROR", False),
            public_ws=_flag(env, "GENAPI_PUBLIC_WS", False),
            ws_compression=_flag(env, "GENAPI_WS_COMPRESSION", False),
            authenticator=env.get("GENAPI_AUTHENTICATOR") or cls.authenticator,
            key_prefix=prefix,
            heartbeat_interval=heartbeat_ms / 1000,
            node_ttl=ttl_ms / 1000,
            refresh_interval=_integer(env, "GENAPI_REFRESH_MS", 30_000, 500, 3_600_000) / 1000,
            admin_token=env.get("GENAPI_ADMIN_TOKEN") or None,
            admin_actions=frozenset(_names(env, "GENAPI_ADMIN_ACTIONS", ADMIN_ACTIONS)),
            push_token=env.get("GENAPI_PUSH_TOKEN") or None,
            registration_allowlist=allowlist,
            service_configs=_service_configs(env),
            pull_interval=_duration(env, "GENAPI_PULL_INTERVAL", 30.0, 0.1, 86400),
            pull_timeout=_duration(env, "GENAPI_PULL_TIMEOUT", 5.0, 0.1, 300),
            registry_retention=_duration(env, "GENAPI_REGISTRY_RETENTION", 86400.0, 1.0, 365 * 86400),
            outbound_queue_bytes=_integer(env, "GENAPI_OUTBOUND_QUEUE_BYTES", cls.outbound_queue_bytes, 65536,
                                          1024 * 1024 * 1024),
            max_in_flight=_integer(env, "GENAPI_MAX_IN_FLIGHT", cls.max_in_flight, 0, 1_000_000),
            max_queue_length=_integer(env, "GENAPI_MAX_QUEUE_LENGTH", cls.max_queue_length, 0, 100_000_000),
            rate_limits=_policy(env, "GENAPI_RATE_LIMITS", RateLimitConfig.parse) or cls.rate_limits,
            rate_limit_redis_url=(_url(env, "GENAPI_RATE_LIMIT_REDIS_URL", redis_url, ("redis", "rediss", "unix"))
                                  if env.get("GENAPI_RATE_LIMIT_REDIS_URL") else None),
            trusted_proxy_header=(env.get("GENAPI_TRUSTED_PROXY_HEADER") or "").strip() or None,
            breakers=_policy(env, "GENAPI_BREAKERS", BreakerConfig.parse) or cls.breakers,
            before_execute=_names(env, "GENAPI_BEFORE_EXECUTE"),
            after_execute=_names(env, "GENAPI_AFTER_EXECUTE"),
            hook_timeout_ms=_integer(env, "GENAPI_HOOK_TIMEOUT_MS", cls.hook_timeout_ms, 1, 300_000),
            relay_max_message_bytes=_integer(env, "GENAPI_RELAY_MAX_MESSAGE_BYTES", cls.relay_max_message_bytes, 16,
                                             16 * 1024 * 1024),
            relay_max_groups=_integer(env, "GENAPI_RELAY_MAX_GROUPS", cls.relay_max_groups, 1, 100_000),
            relay_ttl=_duration(env, "GENAPI_RELAY_TTL", cls.relay_ttl, 1.0, 60.0),
            task_events=_flag(env, "GENAPI_TASK_EVENTS", False),
            metrics=_choice(env, "GENAPI_METRICS", cls.metrics, ("open", "token", "off")),
            log_format=_choice(env, "GENAPI_LOG_FORMAT", cls.log_format, ("text", "json")),
            log_level=_choice(env, "GENAPI_LOG_LEVEL", cls.log_level, ("debug", "info", "warning", "error")),
            telemetry_receivers=_names(env, "GENAPI_TELEMETRY_RECEIVERS"),
            flower_basic_auth=_basic_auth(env),
            otel=_flag(env, "GENAPI_OTEL", False),
            try_page=_flag(env, "GENAPI_TRY_PAGE", False),
            try_page_token=(env.get("GENAPI_TRY_PAGE_TOKEN") or "").strip() or None,
        )

    @property
    def uses_dev_secret(self) -> bool:
        """True while the built-in development key signs tokens (never do this in production)."""
        return self.secret_key == DEV_SECRET_KEY

    def replace(self, **changes) -> Settings:
        """A copy with some values changed (used by tests and the Flask extension)."""
        return replace(self, **changes)

"""The shapes of ``GENAPI_RATE_LIMITS`` and ``GENAPI_BREAKERS``, parsed and validated.

Pure data, no I/O: :mod:`workers.settings` validates the environment with it at start,
the gateway's rate limiter and breakers run on it, and the admin surfaces validate a
runtime replacement with it before storing it. A bad value is refused with a message
naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: ``key`` values that name a fact of the session; any other string names an argument
KEY_TYPES = ("user_id", "device_id", "ip_address")
GLOBAL = "global"


class PolicyConfigError(ValueError):
    """A rate-limit or breaker configuration that cannot be used."""


def _count(data: dict, name: str, where: str, low: int, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PolicyConfigError(f"{where}.{name} must be an integer >= {low}, got {value!r}")
    return value


def _flag(data: dict, name: str, where: str, default: bool) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise PolicyConfigError(f"{where}.{name} must be true or false, got {value!r}")
    return value


def _name(data: dict, name: str, where: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise PolicyConfigError(f"{where}.{name} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True)
class Limit:
    """One limit: at most ``max_requests`` per ``window_ms`` for each value of ``key``.
    ``service``/``request_type`` set: it applies to that function only."""

    key: str
    max_requests: int
    window_ms: int
    service: str | None = None
    request_type: str | None = None

    @property
    def scope(self) -> str:
        return GLOBAL if self.service is None else f"{self.service}.{self.request_type}"

    @property
    def window_seconds(self) -> int:
        """The window the ``limits`` library counts in: whole seconds, rounded up."""
        return max(1, math.ceil(self.window_ms / 1000))

    def to_json(self) -> dict:
        data: dict[str, Any] = {}
        if self.service is not None:
            data.update(service=self.service, request_type=self.request_type)
        data.update(key=self.key, max_requests=self.max_requests, window_ms=self.window_ms)
        return data

    @classmethod
    def parse(cls, data: Any, where: str, api: bool) -> Limit:
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{where} must be an object, got {data!r}")
        allowed = {"key", "max_requests", "window_ms"} | ({"service", "request_type"} if api else set())
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyConfigError(f"{where} has unknown field(s) {', '.join(unknown)}; allowed: "
                                    f"{', '.join(sorted(allowed))}")
        return cls(key=_name(data, "key", where), max_requests=_count(data, "max_requests", where, 1),
                   window_ms=_count(data, "window_ms", where, 1),
                   service=_name(data, "service", where) if api else None,
                   request_type=_name(data, "request_type", where) if api else None)


@dataclass(frozen=True)
class RateLimitConfig:
    """``GENAPI_RATE_LIMITS``: the shapes of reference §6.1, plus ``timeout_ms`` (how long
    the limiter's Redis may take before ``fail_open`` decides)."""

    enabled: bool = True
    fail_open: bool = True
    timeout_ms: int = 1000
    global_limits: tuple[Limit, ...] = ()
    api_limits: tuple[Limit, ...] = ()
    _by_function: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Is there anything to check?"""
        return self.enabled and bool(self.global_limits or self.api_limits)

    def applicable(self, service: str, request_type: str) -> tuple[Limit, ...]:
        """The limits a call of this function meets: the global ones, then its own, in order."""
        key = (service, request_type)
        found = self._by_function.get(key)
        if found is None:
            found = self.global_limits + tuple(limit for limit in self.api_limits
                                               if limit.service == service and limit.request_type == request_type)
            self._by_function[key] = found
        return found

    def to_json(self) -> dict:
        return {"enabled": self.enabled, "fail_open": self.fail_open, "timeout_ms": self.timeout_ms,
                "global_limits": [limit.to_json() for limit in self.global_limits],
                "api_limits": [limit.to_json() for limit in self.api_limits]}

    @classmethod
    def parse(cls, data: Any, base: RateLimitConfig | None = None) -> RateLimitConfig:
        """Validate ``data``; keys it leaves out keep ``base``'s values (the defaults)."""
        where = "rate limits"
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{where} must be a JSON object, got {data!r}")
        allowed = {"enabled", "fail_open", "timeout_ms", "global_limits", "api_limits"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyConfigError(f"{where} has unknown field(s) {', '.join(unknown)}; allowed: "
                                    f"{', '.join(sorted(allowed))}")
        base = base or cls()
        merged = {**base.to_json(), **data}
        lists = {}
        for name, api in (("global_limits", False), ("api_limits", True)):
            items = merged[name]
            if not isinstance(items, list):
                raise PolicyConfigError(f"{where}.{name} must be a list, got {items!r}")
            lists[name] = tuple(Limit.parse(item, f"{name}[{i}]", api) for i, item in enumerate(items))
        return cls(enabled=_flag(merged, "enabled", where, True), fail_open=_flag(merged, "fail_open", where, True),
                   timeout_ms=_count(merged, "timeout_ms", where, 1), **lists)


@dataclass(frozen=True)
class BreakerConfig:
    """``GENAPI_BREAKERS``: consecutive failures that open a service's breaker and a
    worker's, and how long an open breaker refuses calls before one trial goes through."""

    enabled: bool = True
    service_threshold: int = 10
    worker_threshold: int = 5
    cooldown_ms: int = 60_000

    def to_json(self) -> dict:
        return {"enabled": self.enabled, "service_threshold": self.service_threshold,
                "worker_threshold": self.worker_threshold, "cooldown_ms": self.cooldown_ms}

    @classmethod
    def parse(cls, data: Any) -> BreakerConfig:
        where = "breakers"
        if not isinstance(data, dict):
            raise PolicyConfigError(f"{where} must be a JSON object, got {data!r}")
        unknown = sorted(set(data) - set(cls().to_json()))
        if unknown:
            raise PolicyConfigError(f"{where} has unknown field(s) {', '.join(unknown)}")
        defaults = cls()
        return cls(enabled=_flag(data, "enabled", where, True),
                   service_threshold=_count(data, "service_threshold", where, 1, defaults.service_threshold),
                   worker_threshold=_count(data, "worker_threshold", where, 1, defaults.worker_threshold),
                   cooldown_ms=_count(data, "cooldown_ms", where, 1, defaults.cooldown_ms))

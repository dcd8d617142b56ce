"""Rate limits (reference §6), shared by every gateway process through Redis.

The counting is the ``limits`` library's moving window (an exact sliding log, checked and
recorded atomically by a script in Redis), so N concurrent requests against a limit of N
let exactly N through however many gateways they reach. Each limit counts per value of its
key: ``user_id``, ``device_id``, ``ip_address`` or an argument's name. Buckets are keyed by
(scope, key type, value): a user id and a device id that happen to be equal strings never
share a budget (the original's faithful behaviour does; we chose the safe one).

A call meets the global limits, then its function's, in order; the first one exceeded
refuses it with the time until its oldest counted hit leaves the window (earlier limits
have recorded their hit, as in the original). A request with no value for a limit's key is
not limited by it. With no limits configured nothing here runs at all.

The limits in force are ``GENAPI_RATE_LIMITS`` unless an operator replaced them at runtime
(:func:`store_runtime`); that replacement lives in Redis, reaches every gateway through
the registry's events and outlives restarts.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import redis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.policy_config import GLOBAL, KEY_TYPES, BreakerConfig, Limit, PolicyConfigError, RateLimitConfig
from workers.protocol import Keys
from workers.signals import emit, rate_limiter_check, rate_limiter_exceeded, rate_limiter_reset

from . import errors

log = logging.getLogger("genapi.ratelimit")

#: the runtime hash field holding an operator's replacement of the limits
RUNTIME_FIELD = "rate_limits"
#: at most one "limiter unavailable" warning per this many seconds
_WARN_EVERY = 10.0


def limit_item(limit: Limit) -> RateLimitItem:
    return RateLimitItemPerSecond(limit.max_requests, limit.window_seconds, namespace="genapi")


def key_value(key: str, facts: Mapping[str, Any], args: Mapping[str, Any] | None) -> str | None:
    """The value a limit counts by for this request, or ``None`` (not limited by it)."""
    value = facts.get(key) if key in KEY_TYPES else (args or {}).get(key)
    return value if isinstance(value, str) and value else None


def _scope_kind(limit: Limit) -> str:
    """``global`` or ``api`` (a function's own limit), as the original's telemetry names them."""
    return GLOBAL if limit.service is None else "api"


class RateLimiter:
    """Checks and records hits; reports and resets buckets for operators."""

    def __init__(self, storage_url: str, keys: Keys, timeout_ms: int = 1000) -> None:
        self.storage_url, self.keys, self.timeout_ms = storage_url, keys, timeout_ms
        timeout = timeout_ms / 1000
        # no retries: a limiter that does not answer at once is what fail_open is about
        self.storage = RedisStorage(storage_url, key_prefix=keys.rate_limits, socket_timeout=timeout,
                                    socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                                    wrap_exceptions=True)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._items: dict[Limit, RateLimitItem] = {}
        self._warned = 0.0

    def retimed(self, timeout_ms: int) -> RateLimiter:
        """This limiter with another bound on its Redis calls (an operator changed ``timeout_ms``)."""
        return self if timeout_ms == self.timeout_ms else RateLimiter(self.storage_url, self.keys, timeout_ms)

    def _item(self, limit: Limit) -> RateLimitItem:
        item = self._items.get(limit)
        if item is None:
            item = self._items[limit] = limit_item(limit)
        return item

    def check(self, config: RateLimitConfig, service: str, request_type: str, facts: Mapping[str, Any],
              args: Mapping[str, Any] | None) -> None:
        """Count this call against every limit it meets; raise ``Rejected`` when one is
        exceeded, or when the limiter cannot be reached and ``fail_open`` is off."""
        if not rate_limiter_check.receivers:
            self._check(config, service, request_type, facts, args)
            return
        started, result = time.monotonic(), "ok"
        try:
            result = self._check(config, service, request_type, facts, args)
        except errors.Rejected as rejected:
            result = "exceeded" if rejected.code == "rate_limited" else "unavailable"
            raise
        finally:
            emit(rate_limiter_check, self, duration=time.monotonic() - started, request_id=facts.get("request_id"),
                 user_id=facts.get("user_id"), instance=self.keys.rate_limits, service=service,
                 request_type=request_type, result=result)

    def _check(self, config: RateLimitConfig, service: str, request_type: str, facts: Mapping[str, Any],
               args: Mapping[str, Any] | None) -> str:
        for limit in config.applicable(service, request_type):
            value = key_value(limit.key, facts, args)
            if value is None:
                continue
            item = self._item(limit)
            try:
                if self.strategy.hit(item, limit.scope, limit.key, value):
                    continue
                reset_at, _ = self.strategy.get_window_stats(item, limit.scope, limit.key, value)
            except Exception as exc:  # the storage's own errors, or a broken connection
                return self._unavailable(config, exc)
            log.info("rate limit %s %s=%s (%d per %d ms) exceeded", limit.scope, limit.key, value,
                     limit.max_requests, limit.window_ms)
            retry_after = max(0.0, reset_at - time.time())
            emit(rate_limiter_exceeded, self, retry_after=retry_after, key=f"{limit.scope}:{limit.key}:{value}",
                 scope=_scope_kind(limit), max_requests=limit.max_requests, current_requests=limit.max_requests,
                 request_id=facts.get("request_id"), user_id=facts.get("user_id"), service=service,
                 request_type=request_type)
            raise errors.too_many_requests(math.floor(retry_after))
        return "ok"

    def _unavailable(self, config: RateLimitConfig, exc: Exception) -> str:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY:
            self._warned = now
            log.warning("rate limiter unavailable (%s); %s", exc,
                        "letting calls through (fail_open)" if config.fail_open else "refusing calls (fail_open off)")
        if not config.fail_open:
            raise errors.rate_limiter_down() from None
        return "unavailable"

    # ------------------------------------------------------------------ operators

    def _in_scope(self, config: RateLimitConfig, service: str | None, request_type: str | None,
                  key_type: str | None) -> list[Limit]:
        if service is None:
            limits = config.global_limits
        else:
            limits = tuple(limit for limit in config.api_limits
                           if limit.service == service and limit.request_type == request_type)
        return [limit for limit in limits if key_type is None or limit.key == key_type]

    def status(self, config: RateLimitConfig, value: str, service: str | None = None,
               request_type: str | None = None, key_type: str | None = None) -> list[dict]:
        """One entry per limit in scope (the global ones, or ``service.request_type``'s)
        for the bucket of ``value``; records nothing."""
        now = time.time()
        entries = []
        for limit in self._in_scope(config, service, request_type, key_type):
            reset_at, remaining = self.strategy.get_window_stats(self._item(limit), limit.scope, limit.key, value)
            current = limit.max_requests - remaining
            entries.append({
                "scope": limit.scope, "key_type": limit.key, "key": value, "max_requests": limit.max_requests,
                "window_ms": limit.window_ms, "current_requests": current, "remaining": remaining,
                "retry_after_ms": max(0, int((reset_at - now) * 1000)) if remaining <= 0 else 0,
            })
        return entries

    def reset(self, config: RateLimitConfig, value: str, service: str | None = None,
              request_type: str | None = None, key_type: str | None = None) -> int:
        """Empty the buckets of ``value`` in scope; returns how many limits were reset."""
        limits = self._in_scope(config, service, request_type, key_type)
        for limit in limits:
            self.strategy.clear(self._item(limit), limit.scope, limit.key, value)
            emit(rate_limiter_reset, self, key=value, scope=_scope_kind(limit), rate_limit_key=limit.key)
        return len(limits)


# ---------------------------------------------------------------- the limits in force


def current(settings_config: RateLimitConfig, runtime_text: str | None) -> tuple[RateLimitConfig, str]:
    """The limits in force and where they come from (``settings`` or ``runtime``)."""
    if runtime_text:
        try:
            return RateLimitConfig.parse(json.loads(runtime_text)), "runtime"
        except (ValueError, PolicyConfigError) as exc:
            log.error("ignoring the stored runtime rate limits: %s", exc)
    return settings_config, "settings"


def publish_settings(client: redis.Redis, keys: Keys, limits: RateLimitConfig, breakers: BreakerConfig) -> None:
    """A gateway records the policies its settings configure, so ``genapi`` commands run
    elsewhere (with other environment variables) report and extend those."""
    client.hset(keys.policy_settings, mapping={"rate_limits": json.dumps(limits.to_json()),
                                                "breakers": json.dumps(breakers.to_json())})


def gateway_settings(client: redis.Redis, keys: Keys) -> tuple[RateLimitConfig | None, BreakerConfig | None]:
    """What the last gateway to start recorded (``None`` where nothing was)."""
    stored = client.hgetall(keys.policy_settings)
    limits = breakers = None
    try:
        if b"rate_limits" in stored:
            limits = RateLimitConfig.parse(json.loads(stored[b"rate_limits"]))
        if b"breakers" in stored:
            breakers = BreakerConfig.parse(json.loads(stored[b"breakers"]))
    except (ValueError, PolicyConfigError) as exc:
        log.error("ignoring the policy settings a gateway stored: %s", exc)
    return limits, breakers


def describe(config: RateLimitConfig, source: str) -> dict:
    return {**config.to_json(), "source": source}


def store_runtime(client: redis.Redis, keys: Keys, config: RateLimitConfig | None) -> None:
    """Replace the limits on every gateway (``None``: back to ``GENAPI_RATE_LIMITS``)."""
    with client.pipeline(transaction=True) as pipe:
        if config is None:
            pipe.hdel(keys.runtime, RUNTIME_FIELD)
        else:
            pipe.hset(keys.runtime, RUNTIME_FIELD, json.dumps(config.to_json()))
        pipe.publish(keys.events, json.dumps({"event": "runtime", "subject": RUNTIME_FIELD}))
        pipe.execute()


def scope_of(service: str | None, request_type: str | None) -> tuple[str | None, str | None]:
    """Validate an operator's scope: both or neither of service and request type."""
    if (service is None) != (request_type is None):
        raise ValueError("give both a service and a request type (a function's limits), or neither (global)")
    return service, request_type


__all__ = ["GLOBAL", "RateLimiter", "current", "describe", "store_runtime", "scope_of", "key_value"]

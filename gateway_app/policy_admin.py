"""Operator views and changes of the policies: rate limits, breakers, the worker pool.

``genapi rl-status|rl-global|rl-config|pool-status``, ``genapi admin reset-rate-limit|
set-rate-limits`` and the ``/admin/rate-limits`` and ``/admin/pool`` endpoints all call
these methods, so the CLI's ``--json`` prints exactly what the API returns. They work on
Redis directly; every gateway sees a change within its next registry refresh (at once,
through the events channel).
"""

from __future__ import annotations

from typing import Any

import redis

from workers.policy_config import BreakerConfig, RateLimitConfig
from workers.protocol import Keys, direct_queue, service_queue
from workers.registry import Registry
from workers.settings import Settings

from . import breakers, ratelimit
from .ratelimit import RateLimiter


class PolicyAdmin:
    """Rate limits and breakers as every gateway shares them."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings, own: bool = False) -> None:
        """``own``: ``settings`` are the gateway's own (the admin API); else (the CLI) what
        the gateways recorded at start stands in for policies this environment leaves unset."""
        self.client = client
        self.keys = keys
        self.settings = settings
        self.own = own
        self.limiter = RateLimiter(settings.rate_limit_redis_url or settings.redis_url, keys,
                                   settings.rate_limits.timeout_ms)

    # ------------------------------------------------------------------ rate limits

    def _configured(self) -> tuple[RateLimitConfig, BreakerConfig]:
        """The settings' policies: the gateway's own; for the CLI, its own environment's
        where that sets them, else what the gateways recorded when they started."""
        limits, breaker_config = self.settings.rate_limits, self.settings.breakers
        if self.own:
            return limits, breaker_config
        recorded_limits, recorded_breakers = ratelimit.gateway_settings(self.client, self.keys)
        if limits == RateLimitConfig() and recorded_limits is not None:
            limits = recorded_limits
        if breaker_config == BreakerConfig() and recorded_breakers is not None:
            breaker_config = recorded_breakers
        return limits, breaker_config

    def _current(self) -> tuple[RateLimitConfig, str]:
        raw = self.client.hget(self.keys.runtime, ratelimit.RUNTIME_FIELD)
        return ratelimit.current(self._configured()[0], raw.decode() if raw is not None else None)

    def rate_limit_config(self) -> dict:
        """The limits in force and where they come from (``settings`` or ``runtime``)."""
        return ratelimit.describe(*self._current())

    def global_limits(self) -> list[dict]:
        return [limit.to_json() for limit in self._current()[0].global_limits]

    def set_rate_limits(self, changes: Any) -> dict:
        """Replace the given keys of the limits in force, on every gateway, until cleared."""
        config = RateLimitConfig.parse(changes, base=self._current()[0])  # PolicyConfigError is a ValueError
        ratelimit.store_runtime(self.client, self.keys, config)
        return ratelimit.describe(config, "runtime")

    def clear_rate_limits(self) -> dict:
        """Back to ``GENAPI_RATE_LIMITS`` on every gateway."""
        ratelimit.store_runtime(self.client, self.keys, None)
        return ratelimit.describe(self._configured()[0], "settings")

    def rate_limit_status(self, key: str, service: str | None = None, request_type: str | None = None,
                          key_type: str | None = None) -> list[dict]:
        service, request_type = ratelimit.scope_of(service, request_type)
        return self.limiter.status(self._current()[0], key, service, request_type, key_type)

    def reset_rate_limit(self, key: str, service: str | None = None, request_type: str | None = None,
                         key_type: str | None = None) -> dict:
        service, request_type = ratelimit.scope_of(service, request_type)
        count = self.limiter.reset(self._current()[0], key, service, request_type, key_type)
        return {"key": key, "scope": "global" if service is None else f"{service}.{request_type}",
                "key_type": key_type, "reset": count}

    # ------------------------------------------------------------------ the pool

    def pool_status(self) -> dict:
        """Breakers, live workers and queue lengths (the original's pool status, in Celery terms)."""
        breaker_config = self._configured()[1]
        states = breakers.Breakers(self.client, self.keys, breaker_config).states()
        _, nodes = Registry(self.client, self.keys).load_nodes()
        broker = self._broker()
        services: dict[str, dict] = {}
        workers: dict[str, dict] = {}
        for node_id, node in sorted(nodes.items()):
            for service in sorted(node.services):
                services.setdefault(service, {"workers": [], "queue_length": _length(broker, service_queue(service))})
                services[service]["workers"].append(node_id)
            workers[node_id] = {"services": sorted(node.services), "draining": node.draining,
                                "queue_length": _length(broker, node.queue or direct_queue(node_id))}
        return {"breakers": breakers.describe(states), "config": breaker_config.to_json(),
                "services": services, "workers": workers}

    def _broker(self) -> redis.Redis | None:
        url = self.settings.broker_url
        if url == self.settings.redis_url:
            return self.client
        if url.startswith(("redis://", "rediss://", "unix://")):
            return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        return None  # AMQP: queue lengths are the broker's own business (rabbitmqctl, its UI)


def _length(broker: redis.Redis | None, queue: str) -> int | None:
    return None if broker is None else int(broker.llen(queue))

"""Registry retention: a function no live worker serves for long enough leaves by itself.

The original never forgets a function (reference §3.6); after a service is retired it
stays listed and answers ``Service temporarily unavailable`` forever. Here every sweep
notes, per function, the last time a live worker listed its task; a function unserved
for ``GENAPI_REGISTRY_RETENTION`` (default 24 h) is deleted like ``genapi admin delete``
would. A function that was never served starts its clock when first seen.
"""

from __future__ import annotations

import json
import logging

import redis

from workers.protocol import Keys, task_name
from workers.registry import Registry, redis_now_ms
from workers.signals import config_delete, emit

log = logging.getLogger("genapi.registry")


def sweep_interval(retention: float) -> float:
    """Sweep often enough that a function leaves within about a quarter past its retention."""
    return min(60.0, max(0.5, retention / 4))


class Retention:
    """One sweep of the registry; :class:`~gateway_app.leases.SharedSchedule` runs it."""

    def __init__(self, client: redis.Redis, keys: Keys, registry: Registry, retention: float) -> None:
        self.client = client
        self.keys = keys
        self.registry = registry
        self.retention_ms = int(retention * 1000)
        self.interval = sweep_interval(retention)

    def sweep(self) -> float:
        """Refresh the last-served times and delete what expired; returns the next delay."""
        now = redis_now_ms(self.client)
        _, nodes = self.registry.load_nodes()
        live_tasks = {task for node in nodes.values() for task in node.tasks}
        fields = [f.decode() for f in self.client.hkeys(self.keys.functions)]
        seen = {k.decode(): int(v) for k, v in self.client.hgetall(self.keys.seen).items()}
        served, expired = {}, []
        for field in fields:
            if task_name(*Keys.parse_field(field)) in live_tasks or field not in seen:
                served[field] = now
            elif now - seen[field] > self.retention_ms:
                expired.append(field)
        with self.client.pipeline(transaction=False) as pipe:
            if served:
                pipe.hset(self.keys.seen, mapping=served)
            forgotten = [f for f in seen if f not in fields]
            if forgotten:
                pipe.hdel(self.keys.seen, *forgotten)
            pipe.execute()
        if expired:
            self.prune(expired, set(fields) - set(expired))
        return self.interval

    def prune(self, expired: list[str], remaining: set[str]) -> None:
        """Delete the expired functions, and the push record of services left empty."""
        services = {Keys.parse_field(f)[0] for f in expired}
        emptied = [s for s in services if not any(Keys.parse_field(f)[0] == s for f in remaining)]
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.functions, *expired)
            pipe.hdel(self.keys.overrides, *expired)
            pipe.hdel(self.keys.seen, *expired)
            if emptied:
                pipe.hdel(self.keys.pushed, *emptied)
            pipe.publish(self.keys.events, json.dumps({"event": "functions", "subject": "retention"}))
            pipe.execute()
        log.info("retention: removed %s, unserved for more than %ss", ", ".join(sorted(expired)),
                 self.retention_ms // 1000)
        for field in expired:
            service, request_type, version = Keys.parse_field(field)
            emit(config_delete, self, service=service, request_type=request_type, version=version)

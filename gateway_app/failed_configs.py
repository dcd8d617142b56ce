"""Configs a gateway refused, kept 24 hours for operators (reference §3.7).

Each refusal — a push with a bad signature, a FunConfig that does not validate, a callable
the allowlist refuses, a pull answer that makes no sense — is one entry in a Redis sorted
set scored by its expiry, so every gateway process records into, and every operator reads
from, the same list. ``genapi admin failed-configs`` and ``GET /admin/failed-configs``
show it.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from workers.protocol import Keys
from workers.registry import redis_now_ms

TTL_MS = 24 * 3600 * 1000
#: at most this many entries are kept; the oldest go first
MAX_ENTRIES = 10_000
SOURCES = ("push", "pull")


class FailedConfigs:
    """Record and list refused configs."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def record(self, source: str, service: Any, request_type: Any, version: Any, node: str | None,
               reasons: list[str] | str, config: Any) -> dict:
        """Add one entry; returns it."""
        now = redis_now_ms(self.client)
        entry = {
            "id": int(self.client.incr(self.keys.failed_seq)),
            "service": service,
            "request_type": request_type,
            "version": version,
            "source": source,
            "node": node,
            "reason": [reasons] if isinstance(reasons, str) else list(reasons),
            "config": config,
            "inserted_at_ms": now,
            "expires_at_ms": now + TTL_MS,
        }
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.failed, {json.dumps(entry, default=repr): entry["expires_at_ms"]})
            pipe.zremrangebyscore(self.keys.failed, "-inf", now)
            pipe.zremrangebyrank(self.keys.failed, 0, -MAX_ENTRIES - 1)
            pipe.execute()
        return entry

    def list(self, source: str | None = None, service: str | None = None, limit: int = 100,
             newest_first: bool = True) -> list[dict]:
        """Entries that have not expired, newest first unless asked otherwise."""
        now = redis_now_ms(self.client)
        raw = self.client.zrangebyscore(self.keys.failed, now, "+inf")
        entries = [json.loads(item) for item in raw]
        entries = [e for e in entries if (source is None or e["source"] == source)
                   and (service is None or e["service"] == service)]
        entries.sort(key=lambda e: e["id"], reverse=newest_first)
        return entries[:limit] if limit > 0 else entries

    def count(self) -> int:
        return int(self.client.zcount(self.keys.failed, redis_now_ms(self.client), "+inf"))

    def summary(self) -> dict:
        """Totals by source and by service, and the oldest and newest entry times."""
        entries = self.list(limit=MAX_ENTRIES)
        by_service: dict[str, int] = {}
        for entry in entries:
            by_service[str(entry["service"])] = by_service.get(str(entry["service"]), 0) + 1
        times = [e["inserted_at_ms"] for e in entries]
        return {
            "total": len(entries),
            **{source: sum(1 for e in entries if e["source"] == source) for source in SOURCES},
            "by_service": by_service,
            "oldest_ms": min(times, default=None),
            "newest_ms": max(times, default=None),
        }

    def clear(self) -> int:
        """Forget every entry; returns how many there were."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.failed)
            pipe.delete(self.keys.failed)
            count, _ = pipe.execute()
        return int(count)

"""The registry in Redis: which functions exist and which workers are alive.

Keys (prefix ``genapi:`` by default):

* ``functions`` — hash ``service|request_type|version`` → FunConfig JSON (upserted by
  every worker that serves the function; never removed automatically).
* ``nodes`` — sorted set, node id → expiry in ms on the Redis clock, pushed forward by
  each heartbeat. A node whose expiry passed is dead even if it never said goodbye.
* ``node:<id>`` — the node's info JSON (services, task names, direct queue), same TTL.
* ``events`` — pub/sub channel; a message means "the registry changed, refresh".
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from .funconfig import FunConfig
from .protocol import Keys, direct_queue


@dataclass(frozen=True)
class NodeInfo:
    """One live worker as the gateway sees it."""

    node_id: str
    services: frozenset[str]
    tasks: frozenset[str]
    queue: str
    expires_ms: int

    @classmethod
    def from_json(cls, node_id: str, expires_ms: int, raw: str | bytes) -> NodeInfo:
        data = json.loads(raw)
        return cls(node_id, frozenset(data.get("services", ())), frozenset(data.get("tasks", ())),
                   data.get("queue") or direct_queue(node_id), expires_ms)


def redis_now_ms(client: redis.Redis) -> int:
    """The Redis server's clock in ms: every process compares expiries against it."""
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


class Registry:
    """Reads and writes the registry keys; one instance per process is enough."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._info = "{}"

    # ---------------------------------------------------------------- worker side

    def register(self, node_id: str, configs: Iterable[FunConfig], ttl: float) -> None:
        """Publish this node's functions and mark it alive (called on ``worker_ready``)."""
        configs = list(configs)
        if configs:
            self.client.hset(self.keys.functions, mapping={
                Keys.function_field(*c.key): json.dumps(c.to_json()) for c in configs})
        info = {
            "services": sorted({c.service for c in configs}),
            "tasks": sorted(c.task_name for c in configs),
            "queue": direct_queue(node_id),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
        }
        self._info = json.dumps(info)
        self.heartbeat(node_id, ttl)
        self.announce("node-up", node_id)

    def heartbeat(self, node_id: str, ttl: float) -> None:
        """Push the node's expiry forward by ``ttl`` seconds."""
        expires = redis_now_ms(self.client) + int(ttl * 1000)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.nodes, {node_id: expires})
            pipe.set(self.keys.node(node_id), self._info, px=int(ttl * 1000))
            pipe.execute()

    def leave(self, node_id: str) -> None:
        """Remove the node at once (warm shutdown), so gateways stop routing to it."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(self.keys.nodes, node_id)
            pipe.delete(self.keys.node(node_id))
            pipe.execute()
        self.announce("node-down", node_id)

    def announce(self, kind: str, subject: str) -> None:
        self.client.publish(self.keys.events, json.dumps({"event": kind, "subject": subject}))

    # --------------------------------------------------------------- gateway side

    def load_functions(self) -> dict[str, str]:
        """Every stored FunConfig JSON, by field name."""
        raw = self.client.hgetall(self.keys.functions)
        return {_text(k): _text(v) for k, v in raw.items()}

    def load_nodes(self) -> tuple[int, dict[str, NodeInfo]]:
        """(Redis time in ms, live nodes). Expired entries are dropped from the set."""
        now = redis_now_ms(self.client)
        self.client.zremrangebyscore(self.keys.nodes, "-inf", now)
        members = self.client.zrange(self.keys.nodes, 0, -1, withscores=True)
        if not members:
            return now, {}
        ids = [_text(m) for m, _ in members]
        infos = self.client.mget([self.keys.node(i) for i in ids])
        nodes = {}
        for (node_id, (_, score)), raw in zip(zip(ids, members, strict=True), infos, strict=True):
            if raw is not None:
                nodes[node_id] = NodeInfo.from_json(node_id, int(score), raw)
        return now, nodes


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

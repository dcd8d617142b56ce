"""The registry in Redis: which functions exist and which workers are alive.

Keys (prefix ``genapi:`` by default; :class:`~workers.protocol.Keys` names them all):

* ``functions`` — hash ``service|request_type|version`` → FunConfig JSON. Only gateways
  write it, after checking a worker's push (or pull answer); operators delete from it.
* ``overrides`` — hash, same fields → ``{"disabled": true|false}``: an operator's
  disable/enable, kept apart so a worker re-registering does not undo it.
* ``push:inbox`` — list of PushConfigs from workers, waiting for a gateway to check them.
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
    #: when the worker started (its wall clock): ``first``/``last`` selection order
    started: float = 0.0
    #: shutting down warmly: it finishes its calls but takes no new ones
    draining: bool = False

    @classmethod
    def from_json(cls, node_id: str, expires_ms: int, raw: str | bytes) -> NodeInfo:
        data = json.loads(raw)
        return cls(node_id, frozenset(data.get("services", ())), frozenset(data.get("tasks", ())),
                   data.get("queue") or direct_queue(node_id), expires_ms, float(data.get("started") or 0.0),
                   bool(data.get("draining")))


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

    #: pushes kept waiting while no gateway runs (a worker restarting in a loop must not
    #: grow the inbox without bound)
    INBOX_LIMIT = 1000

    def push(self, data: dict) -> None:
        """Queue a PushConfig for the gateways (they check, apply and answer it)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.lpush(self.keys.push_inbox, json.dumps(data))
            pipe.ltrim(self.keys.push_inbox, 0, self.INBOX_LIMIT - 1)
            pipe.execute()

    def push_outcome(self, push_id: str) -> dict | None:
        """What a gateway answered to a push, once one has handled it."""
        raw = self.client.get(self.keys.push_result(push_id))
        return json.loads(raw) if raw else None

    def join(self, node_id: str, configs: Iterable[FunConfig], ttl: float) -> None:
        """Mark this node alive with the tasks it serves (called on ``worker_ready``)."""
        configs = list(configs)
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

    def drain(self, node_id: str, ttl: float) -> None:
        """Warm shutdown began: gateways stop choosing the node, but still count it alive
        (heartbeats go on) while it finishes its running calls."""
        self._info = json.dumps({**json.loads(self._info), "draining": True})
        self.heartbeat(node_id, ttl)
        self.announce("node-draining", node_id)

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

    def load_functions(self) -> tuple[dict[str, str], dict[str, bool], dict[str, str]]:
        """(FunConfig JSON by field, the operator's disabled flags by field, runtime settings)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.functions)
            pipe.hgetall(self.keys.overrides)
            pipe.hgetall(self.keys.runtime)
            functions, overrides, runtime = pipe.execute()
        disabled = {}
        for name, raw in overrides.items():
            try:
                disabled[_text(name)] = bool(json.loads(raw)["disabled"])
            except (ValueError, KeyError, TypeError):
                continue  # a hand-edited entry we cannot read changes nothing
        return ({_text(k): _text(v) for k, v in functions.items()}, disabled,
                {_text(k): _text(v) for k, v in runtime.items()})

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

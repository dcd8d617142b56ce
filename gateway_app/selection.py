"""Node selection: which worker runs a call (``choose_node_mode``, reference §4).

* ``"any"`` (the default): the service's shared queue; the broker hands the task to a free
  worker. (During a rolling deploy, when only some workers have the task, one of those.)
* ``"random"``, ``"round_robin"`` (strict alternation, per gateway process and function),
  ``"hash"`` (of the request id), ``{"hash": arg}`` (of that argument's value),
  ``{"sticky": arg}`` (the value's worker is remembered in Redis, shared by every gateway,
  with a TTL; it moves when that worker dies), ``"first"`` / ``"last"`` (hot standby: the
  longest- or most recently-running live worker), and ``"module:function"``, a selector
  given the live nodes and the request, returning a node id.

Every mode but ``any`` sends the task to the chosen worker's direct queue, and only live
workers that have the task are ever chosen. Hashes are CRC32 of the value's JSON, so every
gateway process picks the same worker for the same value (never Python's ``hash()``).
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import random
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from workers.funconfig import FunConfig
from workers.protocol import Keys, direct_queue, service_queue
from workers.registry import NodeInfo

from . import errors

log = logging.getLogger("genapi.gateway")

#: how long a sticky value stays on its worker after its last call (seconds)
STICKY_TTL = 3600


@dataclass(frozen=True)
class Choice:
    """Where to send a call: the queue, and the worker when one was chosen."""

    queue: str
    node: str | None = None


def stable_hash(value: Any) -> int:
    """The same number for the same JSON value in every process (CRC32); ``1`` and ``1.0``
    are the same value."""
    return zlib.crc32(_canonical(value).encode("utf-8"))


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def _direct(node: NodeInfo) -> Choice:
    return Choice(node.queue or direct_queue(node.node_id), node.node_id)


class NodeSelector:
    """Built once per gateway process: it holds the round-robin counters and selectors."""

    def __init__(self, client: redis.Redis, keys: Keys, sticky_ttl: int = STICKY_TTL) -> None:
        self.client = client
        self.keys = keys
        self.sticky_ttl = sticky_ttl
        self._counters: dict[str, itertools.count] = {}
        self._selectors: dict[str, Callable] = {}
        self._lock = threading.Lock()

    def select(self, config: FunConfig, serving: list[NodeInfo], service_size: int, request: dict | None) -> Choice:
        """Choose among ``serving`` (live workers that have the task). ``service_size`` is
        how many live workers consume the service queue; ``request`` carries request_id,
        args and the caller's identity (not needed, and ``None``, for ``any``)."""
        if not serving:
            raise errors.unavailable("no_live_worker")
        mode = config.choose_node_mode
        if mode == "any":
            if len(serving) == service_size:
                return Choice(service_queue(config.service))
            return _direct(random.choice(serving))  # a rolling deploy: only these have it
        ordered = sorted(serving, key=lambda n: n.node_id)  # the same order in every gateway
        return _direct(self._pick(config, mode, ordered, request))

    def _pick(self, config: FunConfig, mode: Any, ordered: list[NodeInfo], request: dict) -> NodeInfo:
        if mode == "random":
            return random.choice(ordered)
        if mode == "round_robin":
            return ordered[next(self._counter(config.task_name)) % len(ordered)]
        if mode == "hash":
            return ordered[stable_hash(request["request_id"]) % len(ordered)]
        if mode in ("first", "last"):
            by_age = sorted(ordered, key=lambda n: (n.started, n.node_id))
            return by_age[0] if mode == "first" else by_age[-1]
        if isinstance(mode, dict) and "hash" in mode:
            value = request["args"].get(mode["hash"])
            if value is None:
                log.warning("%s: no value for hash key %r; choosing at random", config.task_name, mode["hash"])
                return random.choice(ordered)
            return ordered[stable_hash(value) % len(ordered)]
        if isinstance(mode, dict) and "sticky" in mode:
            return self._sticky(config, mode["sticky"], ordered, request)
        return self._custom(config, mode, ordered, request)

    def _counter(self, task: str) -> itertools.count:
        with self._lock:
            return self._counters.setdefault(task, itertools.count())

    def _sticky(self, config: FunConfig, key: str, ordered: list[NodeInfo], request: dict) -> NodeInfo:
        """The value's remembered worker if it is still alive, else a new one, remembered."""
        value = request["args"].get(key)
        if value is None or value is False:
            value = request.get(key)  # the request's own field of that name (user_id, …)
        if value is None or value is False:
            return random.choice(ordered)
        name = self.keys.sticky(config.service, _canonical(value))
        by_id = {node.node_id: node for node in ordered}
        remembered = self.client.getex(name, ex=self.sticky_ttl)
        if remembered is not None and remembered.decode() in by_id:
            return by_id[remembered.decode()]
        chosen = random.choice(ordered)
        self.client.set(name, chosen.node_id, ex=self.sticky_ttl)
        return chosen

    def _custom(self, config: FunConfig, path: str, ordered: list[NodeInfo], request: dict) -> NodeInfo:
        try:
            selector = self._selector(path)
            picked = selector(list(ordered), request)
        except Exception:
            log.exception("%s: node selector %s failed", config.task_name, path)
            raise errors.selection_failed() from None
        node_id = picked.node_id if isinstance(picked, NodeInfo) else picked
        for node in ordered:
            if node.node_id == node_id:
                return node
        log.error("%s: node selector %s chose %r, not one of the live workers %s", config.task_name, path,
                  picked, [n.node_id for n in ordered])
        raise errors.selection_failed()

    def _selector(self, path: str) -> Callable:
        selector = self._selectors.get(path)
        if selector is None:
            module, _, attr = path.partition(":")
            selector = importlib.import_module(module)
            for part in attr.split("."):
                selector = getattr(selector, part)
            self._selectors[path] = selector
        return selector

    def for_retry(self, serving: list[NodeInfo], same: str | None, avoid: Iterable[str]) -> Choice | None:
        """Where a retry goes: ``same`` while it lives (``same_node``), else a live worker
        other than those to ``avoid`` if there is one (``all_nodes``), else any live one."""
        if not serving:
            return None
        by_id = {node.node_id: node for node in serving}
        if same is not None and same in by_id:
            return _direct(by_id[same])
        others = [node for node in serving if node.node_id not in set(avoid)]
        return _direct(random.choice(others or serving))

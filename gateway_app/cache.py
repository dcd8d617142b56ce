"""The gateway's local copy of the registry: FunConfigs and live nodes.

Requests read an immutable :class:`Snapshot`; a refresh builds a new one and swaps it in,
so a request never sees half an update. :class:`RegistryCache` refreshes on change
notifications (pub/sub, via the listener), polls node liveness every second, and reloads
everything every ``GENAPI_REFRESH_MS`` in case a notification was missed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import redis

from workers.errors import FunConfigError
from workers.funconfig import FunConfig, load_funconfig
from workers.registry import NodeInfo, Registry

log = logging.getLogger("genapi.gateway")

FunctionKey = tuple[str, str]  # (service, request_type)


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Snapshot:
    """What the gateway knows at one instant."""

    functions: Mapping[FunctionKey, Mapping[str | None, FunConfig]] = field(default_factory=dict)
    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)
    #: Redis clock minus local clock, so node expiries compare on the Redis clock
    clock_offset_ms: int = 0
    #: ``detail_error`` as an operator switched it at runtime (``None``: the setting's)
    detail_error: bool | None = None
    #: every runtime setting an operator stored (JSON text by name), e.g. ``rate_limits``
    runtime: Mapping[str, str] = field(default_factory=dict)

    def versions(self, service: str, request_type: str) -> Mapping[str | None, FunConfig] | None:
        return self.functions.get((service, request_type))

    def live_nodes(self, predicate) -> list[NodeInfo]:
        """Nodes whose heartbeat has not expired (draining ones included: they still work)."""
        now = _now_ms() + self.clock_offset_ms
        return [n for n in self.nodes.values() if n.expires_ms > now and predicate(n)]

    def nodes_for_task(self, task_name: str) -> list[NodeInfo]:
        """Live nodes that take new calls of this task."""
        return self.live_nodes(lambda n: task_name in n.tasks and not n.draining)

    def nodes_for_service(self, service: str) -> list[NodeInfo]:
        """Live nodes that take new calls from the service's shared queue."""
        return self.live_nodes(lambda n: service in n.services and not n.draining)

    def all_configs(self) -> list[FunConfig]:
        return [c for versions in self.functions.values() for c in versions.values()]


def _detail_error(runtime: Mapping[str, str]) -> bool | None:
    try:
        value = json.loads(runtime["detail_error"]) if "detail_error" in runtime else None
    except ValueError:
        value = None
    return value if isinstance(value, bool) else None


class RegistryCache:
    """Keeps :attr:`snapshot` in sync with Redis."""

    def __init__(self, registry: Registry, refresh_interval: float, node_interval: float = 1.0,
                 on_refresh: Callable[[], None] | None = None) -> None:
        self.registry = registry
        self.on_refresh = on_refresh
        self.refresh_interval = refresh_interval
        self.node_interval = node_interval
        self.snapshot = Snapshot()
        self._parsed: dict[str, FunConfig] = {}
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.last_refresh = 0.0

    def refresh(self) -> None:
        """Reload functions, the operator's overrides, runtime settings and nodes now."""
        with self._lock:
            functions, runtime = self._load_functions()
            offset, nodes = self._load_nodes()
            self.snapshot = Snapshot(functions, nodes, offset, _detail_error(runtime), runtime)
            self.last_refresh = time.monotonic()

    def refresh_nodes(self) -> None:
        with self._lock:
            offset, nodes = self._load_nodes()
            self.snapshot = replace(self.snapshot, nodes=nodes, clock_offset_ms=offset)

    def notify_changed(self) -> None:
        """Called by the listener on a registry event: refresh soon, off the listener."""
        self._changed.set()

    def _load_nodes(self) -> tuple[int, dict[str, NodeInfo]]:
        local = _now_ms()
        redis_now, nodes = self.registry.load_nodes()
        return redis_now - local, nodes

    def _load_functions(self) -> tuple[dict[FunctionKey, dict[str | None, FunConfig]], dict[str, str]]:
        texts, overrides, runtime = self.registry.load_functions()
        parsed: dict[str, FunConfig] = {}
        functions: dict[FunctionKey, dict[str | None, FunConfig]] = {}
        for name, text in texts.items():
            config = self._parsed.get(text)
            if config is None:
                try:
                    config = load_funconfig(json.loads(text))
                except (FunConfigError, ValueError) as exc:
                    log.error("ignoring stored function %s: %s", name, exc)
                    continue
            parsed[text] = config
            if name in overrides and overrides[name] != config.disabled:
                config = replace(config, disabled=overrides[name])  # the operator's choice wins
            functions.setdefault((config.service, config.request_type), {})[config.version] = config
        self._parsed = parsed
        return functions, runtime

    def run(self) -> None:
        """The refresher loop (one thread per gateway process) until :meth:`stop`."""
        while not self._stop.is_set():
            changed = self._changed.wait(self.node_interval)
            if self._stop.is_set():
                break
            self._changed.clear()
            try:
                if changed or time.monotonic() - self.last_refresh >= self.refresh_interval:
                    self.refresh()
                else:
                    self.refresh_nodes()
            except redis.RedisError as exc:
                log.warning("registry refresh failed: %s", exc)
                continue
            if self.on_refresh is not None:
                try:
                    self.on_refresh()
                except Exception:
                    log.exception("error after a registry refresh")

    def stop(self) -> None:
        self._stop.set()
        self._changed.set()

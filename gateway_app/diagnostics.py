"""Health and statistics for operators (reference §14), as plain dicts (call flows: :mod:`.callflow`).

``genapi health|stats|call-flow`` print these, ``/healthz`` reports :func:`liveness` and
``/readyz`` pings through :class:`Probes`. Everything reads Redis directly, through the same
code the gateway and the admin commands use (:class:`~gateway_app.cache.RegistryCache`,
:class:`~gateway_app.admin.Admin`, :class:`~gateway_app.policy_admin.PolicyAdmin`), so a
call flow resolves a version exactly as a call would. Health checks use clients with short
timeouts and no retries: a Redis that is gone or frozen is reported within seconds, never
waited on. Statuses aggregate as in the original: any ``error`` makes ``error``, else any
``degraded`` makes ``degraded``, else ``ok``.
"""

from __future__ import annotations

import json
import os
import resource
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from workers.funconfig import FunConfig
from workers.protocol import Keys
from workers.settings import Settings
from workers.signals import EVENTS

from . import dispatch, versions
from .admin import Admin
from .admin_cli import redact_url
from .cache import RegistryCache, Snapshot
from .errors import Rejected
from .policy_admin import PolicyAdmin

OK, DEGRADED, ERROR = "ok", "degraded", "error"
_RANK = {OK: 0, DEGRADED: 1, ERROR: 2}
#: seconds a health probe may wait for Redis, the broker or a gateway
PROBE_TIMEOUT = 2.0
#: open file descriptors at or above this share of the process's limit: ``degraded``
#: (each WebSocket is one; at the limit new connections fail)
FD_PRESSURE = 0.9
#: at most this many keys are scanned when counting live gateway processes
SCAN_CAP = 10_000
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def aggregate(statuses: Iterable[str]) -> str:
    """Any ``error`` ⇒ ``error``, else any ``degraded`` ⇒ ``degraded``, else ``ok``."""
    worst = max((_RANK[status] for status in statuses), default=0)
    return next(name for name, rank in _RANK.items() if rank == worst)


def _now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------ probes


def probe_client(url: str, timeout: float = PROBE_TIMEOUT) -> redis.Redis:
    """A client for health checks: short timeouts, no retries (the gateway's own client
    retries and waits longer, which is right for calls and wrong for a probe)."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0))


def ping(client: redis.Redis) -> str:
    """``"ok"`` or ``"unavailable: <why>"``."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"unavailable: {exc}"
    return "ok"


class Probes:
    """The readiness checks of one gateway process, each bounded by ``timeout`` seconds."""

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        self.timeout = timeout
        self._clients: dict[str, redis.Redis] = {}

    def client(self, url: str) -> redis.Redis:
        """The probe client of ``url`` (one per URL, kept: a probe must not cost a connect)."""
        client = self._clients.get(url)
        if client is None:
            client = self._clients[url] = probe_client(url, self.timeout)
        return client

    def redis(self, url: str) -> str:
        return ping(self.client(url))

    def broker(self, url: str, dispatcher: dispatch.Dispatcher | None = None) -> str:
        """A Redis broker is pinged like Redis; any other asks its dispatcher (Celery's own
        connection check is bounded already) or, without one, kombu."""
        if url.startswith(_REDIS_SCHEMES):
            return self.redis(url)
        if dispatcher is not None:
            return dispatch.broker_check(dispatcher)
        from kombu import Connection

        try:
            with Connection(url, connect_timeout=self.timeout) as connection:
                connection.ensure_connection(max_retries=1, timeout=self.timeout)
        except Exception as exc:  # each transport raises its own errors
            return f"unavailable: {type(exc).__name__}: {exc}"
        return "ok"


# ------------------------------------------------------------------ the process (/healthz)


def fd_status(open_fds: int | None, fd_limit: int | None) -> str:
    """``degraded`` when the open file descriptors near the limit, else ``ok``."""
    if open_fds is None or not fd_limit or fd_limit == resource.RLIM_INFINITY:
        return OK
    return DEGRADED if open_fds >= FD_PRESSURE * fd_limit else OK


def _proc(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None  # not Linux: those fields are left out


def _uptime_s() -> float | None:
    """Seconds since this process started (``/proc``: field 22 of ``stat`` is the start time
    in clock ticks after boot; the name field may hold spaces, so split after its ``)``)."""
    stat, uptime = _proc("/proc/self/stat"), _proc("/proc/uptime")
    if stat is None or uptime is None:
        return None
    started_ticks = int(stat.rpartition(")")[2].split()[19])
    return round(float(uptime.split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK"), 1)


def process_check(connections: int | None = None) -> dict:
    """This process: pid, uptime, resident memory, threads, open file descriptors and
    WebSockets. Reads ``/proc`` only: cheap enough for every liveness probe."""
    statm = _proc("/proc/self/statm")
    try:
        open_fds: int | None = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_fds = None
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {
        "status": fd_status(open_fds, fd_limit),
        "pid": os.getpid(),
        "uptime_s": _uptime_s(),
        "rss_bytes": int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE") if statm else None,
        "threads": threading.active_count(),
        "open_fds": open_fds,
        "fd_limit": None if fd_limit == resource.RLIM_INFINITY else fd_limit,
        "connections": connections,
    }


def liveness(gateway_id: str, connections: int) -> dict:
    """What ``/healthz`` reports (its details only with the admin token). No Redis here:
    a process whose Redis is down is alive, merely not ready."""
    checks = {"process": process_check(connections)}
    return {"status": aggregate(c["status"] for c in checks.values()), "gateway_id": gateway_id,
            "checked_at_ms": _now_ms(), "checks": checks}


# ------------------------------------------------------------------ genapi health


def snapshot_of(admin: Admin, settings: Settings) -> Snapshot:
    """The registry exactly as a gateway process sees it (operator overrides applied)."""
    cache = RegistryCache(admin.registry, settings.refresh_interval)
    cache.refresh()
    return cache.snapshot


def _latest(request_type: str, by_version: dict) -> FunConfig | None:
    try:
        return versions.resolve(by_version, request_type, None)
    except Rejected:
        return None  # every version disabled: not callable without a version, by design


def _registry_checks(snapshot: Snapshot) -> dict:
    live = snapshot.live_nodes(lambda n: True)
    taking = [n for n in live if not n.draining]
    workers = {"status": OK if taking else DEGRADED, "live": len(live), "draining": len(live) - len(taking),
               "nodes": {n.node_id: {"services": sorted(n.services), "draining": n.draining}
                         for n in sorted(live, key=lambda n: n.node_id)}}
    configs = snapshot.all_configs()
    latest = [c for (_, request_type), by_version in snapshot.functions.items()
              if (c := _latest(request_type, by_version)) is not None]
    unserved = sorted(c.task_name for c in latest if not snapshot.nodes_for_task(c.task_name))
    functions = {"status": OK if configs and not unserved else DEGRADED, "count": len(configs),
                 "services": len({c.service for c in configs}), "unserved": unserved}
    return {"workers": workers, "functions": functions}


def _gateway_check(url: str, token: str | None, timeout: float) -> dict:
    target = url if url.rstrip("/").endswith("/readyz") else url.rstrip("/") + "/readyz"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(target, headers=headers), timeout=timeout) as reply:
            code, body = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read()
    except (urllib.error.URLError, OSError) as exc:
        return {"status": ERROR, "url": target, "error": str(getattr(exc, "reason", exc))}
    try:
        ready = json.loads(body)
    except ValueError:
        ready = None
    check = {"status": OK if code == 200 else ERROR, "url": target, "http_status": code}
    if isinstance(ready, dict):
        check["checks"] = ready.get("checks")
    return check


def _dependency(result: str, url: str, **extra: Any) -> dict:
    check = {"status": OK if result == "ok" else ERROR, "url": redact_url(url), **extra}
    if result != "ok":
        check["error"] = result
    return check


def health(settings: Settings, gateway_url: str | None = None, timeout: float = PROBE_TIMEOUT) -> dict:
    """Redis, the broker, live workers, registered functions and (``gateway_url``) a
    gateway's ``/readyz``. Never raises for an unreachable dependency: it is reported."""
    probes = Probes(timeout)
    started = time.monotonic()
    redis_status = probes.redis(settings.redis_url)
    checks = {"redis": _dependency(redis_status, settings.redis_url,
                                   latency_ms=round((time.monotonic() - started) * 1000, 1))}
    same = settings.broker_url == settings.redis_url
    checks["broker"] = _dependency(redis_status if same else probes.broker(settings.broker_url),
                                   settings.broker_url, same_as_redis=same)
    reason = None if redis_status == "ok" else "not checked: Redis is unavailable"
    if reason is None:
        try:
            admin = Admin(probes.client(settings.redis_url), Keys(settings.key_prefix))
            checks.update(_registry_checks(snapshot_of(admin, settings)))
        except redis.RedisError as exc:
            reason = f"unavailable: {exc}"
    if reason is not None:
        checks.update({name: {"status": ERROR, "error": reason} for name in ("workers", "functions")})
    if gateway_url:
        checks["gateway"] = _gateway_check(gateway_url, settings.admin_token, timeout)
    return {"status": aggregate(c["status"] for c in checks.values()), "checked_at_ms": _now_ms(),
            "checks": checks}


# ------------------------------------------------------------------ genapi stats


def _count_keys(client: redis.Redis, pattern: str) -> tuple[int, bool]:
    """(keys matching ``pattern``, whether counting stopped at :data:`SCAN_CAP`)."""
    count = 0
    for _ in client.scan_iter(match=pattern, count=1000):
        count += 1
        if count >= SCAN_CAP:
            return count, True
    return count, False


def _nodes(snapshot: Snapshot, settings: Settings) -> dict:
    """Live workers; the heartbeat age assumes this environment's ``GENAPI_NODE_TTL_MS``."""
    redis_now = _now_ms() + snapshot.clock_offset_ms
    ttl_ms = int(settings.node_ttl * 1000)
    return {node.node_id: {
        "services": sorted(node.services), "draining": node.draining, "tasks": len(node.tasks),
        "expires_in_ms": node.expires_ms - redis_now,
        "heartbeat_age_ms": max(0, ttl_ms - (node.expires_ms - redis_now)),
        "started_at_ms": int(node.started * 1000) if node.started else None,
    } for node in sorted(snapshot.live_nodes(lambda n: True), key=lambda n: n.node_id)}


def stats(admin: Admin, policies: PolicyAdmin, settings: Settings) -> dict:
    """Registry, workers, pushes, failed configs, policies, relay, Redis and telemetry."""
    snapshot = snapshot_of(admin, settings)
    registry = admin.cache_status()
    for service, counts in registry["by_service"].items():
        counts["versions"] = {request_type: sorted((v or "" for v in by_version), key=versions.semver_key)
                              for (svc, request_type), by_version in sorted(snapshot.functions.items())
                              if svc == service}
    limits = policies.rate_limit_config()
    pool = policies.pool_status()
    states = [b["state"] for b in pool["breakers"]]
    client = admin.client
    info = {**client.info("server"), **client.info("memory"), **client.info("clients")}
    gateways, capped = _count_keys(client, admin.keys.relay_alive("*"))
    return {
        "collected_at_ms": _now_ms(),
        "registry": {"functions": registry["count"], "services": registry["by_service"]},
        "nodes": _nodes(snapshot, settings),
        "pushed_services": admin.pushed_services(),
        "failed_configs": registry["failed_configs"],
        "rate_limits": {"enabled": limits["enabled"], "fail_open": limits["fail_open"], "source": limits["source"],
                        "global_limits": len(limits["global_limits"]), "api_limits": len(limits["api_limits"])},
        "breakers": {"enabled": pool["config"]["enabled"], "with_state": len(states), "open": states.count("open"),
                     "half_open": states.count("half_open"), "closed": states.count("closed")},
        "queues": {name: service["queue_length"] for name, service in pool["services"].items()},
        "relay": {"groups": client.scard(admin.keys.relay_groups)},
        "gateways": {"live": gateways, "capped": capped},
        "redis": {name: info.get(name) for name in ("redis_version", "uptime_in_seconds", "used_memory",
                                                    "used_memory_human", "connected_clients")},
        "telemetry_events": len(EVENTS),
    }


# ------------------------------------------------------------------ genapi call-flow

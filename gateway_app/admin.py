"""Operator actions on the shared registry, for the ``genapi admin`` CLI and ``/admin/`` API.

Both surfaces call these functions, so ``genapi admin list --json`` prints exactly what
``GET /admin/functions`` returns. Everything works on Redis directly: every gateway
process hears of a change through the registry events channel at once, and the change
outlives every gateway because it lives in Redis. An operator's disable/enable is kept in
its own hash, so a worker that registers the function again does not undo it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import redis

from workers.errors import FunConfigError
from workers.funconfig import FunConfig, load_funconfig
from workers.protocol import Keys
from workers.registry import Registry, redis_now_ms
from workers.signals import config_delete, config_disable, config_enable, emit

from . import versions
from .errors import Rejected
from .failed_configs import FailedConfigs
from .puller import pull_status


class UnknownFunction(LookupError):
    """The function (or version) an operator named is not in the registry."""

    def __init__(self, service: str, request_type: str, version: str | None) -> None:
        which = f" version {version}" if version else ""
        super().__init__(f"no function {service}.{request_type}{which} is registered "
                         "(`genapi admin list` shows what is)")


class Admin:
    """Reads and changes the registry for operators."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.registry = Registry(client, keys)
        self.failed = FailedConfigs(client, keys)

    # ------------------------------------------------------------------ reading

    def _configs(self) -> tuple[dict[str, FunConfig], dict[str, bool]]:
        functions, overrides, _ = self.registry.load_functions()
        configs = {}
        for field, text in functions.items():
            try:
                configs[field] = load_funconfig(json.loads(text))
            except (FunConfigError, ValueError):
                continue  # unreadable entries are what `delete` is for; they are never served
        return configs, overrides

    def list_functions(self, service: str | None = None) -> list[dict]:
        """Every registered function version with its ``disabled`` and ``available`` flags."""
        configs, overrides = self._configs()
        _, nodes = self.registry.load_nodes()
        by_function: dict[tuple[str, str], dict[str | None, FunConfig]] = {}
        for field, config in configs.items():
            if service is None or config.service == service:
                disabled = overrides.get(field, config.disabled)
                by_function.setdefault((config.service, config.request_type), {})[config.version] = \
                    replace(config, disabled=disabled)
        listing = []
        for (svc, request_type), by_version in sorted(by_function.items()):
            try:
                latest = versions.resolve(by_version, request_type, None)
            except Rejected:
                latest = None
            for config in sorted(by_version.values(), key=lambda c: versions.semver_key(c.version or "")):
                field = Keys.function_field(*config.key)
                serving = sorted(n.node_id for n in nodes.values() if config.task_name in n.tasks)
                listing.append({
                    "service": svc,
                    "request_type": request_type,
                    "version": config.version,
                    "disabled": config.disabled,
                    "override": None if field not in overrides else ("disabled" if overrides[field] else "enabled"),
                    "available": bool(serving) and not config.disabled,
                    "latest": config is latest,
                    "nodes": serving,
                    "response_type": config.response_type,
                    "timeout": "infinity" if config.timeout is None else config.timeout,
                    "task": config.task_name,
                })
        return listing

    def _matching(self, service: str, request_type: str, version: str | None) -> list[str]:
        fields = [f.decode() for f in self.client.hkeys(self.keys.functions)]
        matches = [f for f in fields if Keys.parse_field(f)[:2] == (service, request_type)
                   and (version is None or Keys.parse_field(f)[2] == (version or None))]
        if not matches:
            raise UnknownFunction(service, request_type, version)
        return sorted(matches)

    # ------------------------------------------------------------------ changing

    def _announce(self, pipe, subject: str) -> None:
        pipe.publish(self.keys.events, json.dumps({"event": "functions", "subject": subject}))

    def set_disabled(self, service: str, request_type: str, version: str | None, disabled: bool) -> list[dict]:
        """Disable or enable one version (``version=None``: every version); returns what changed."""
        fields = self._matching(service, request_type, version)
        now = redis_now_ms(self.client)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.overrides, mapping={f: json.dumps({"disabled": disabled, "at_ms": now})
                                                    for f in fields})
            self._announce(pipe, f"{service}.{request_type}")
            pipe.execute()
        changed = [self._describe(f, disabled=disabled) for f in fields]
        for entry in changed:
            emit(config_disable if disabled else config_enable, self, service=service, request_type=request_type,
                 version=entry["version"])
        return changed

    def delete(self, service: str, request_type: str, version: str | None) -> list[dict]:
        """Remove one version (``version=None``: every version) from the registry at once.

        A worker that still serves it registers it again when it next starts (its push no
        longer matches what is stored); use ``disable`` to keep it out of service."""
        fields = self._matching(service, request_type, version)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.functions, *fields)
            pipe.hdel(self.keys.overrides, *fields)
            pipe.hdel(self.keys.seen, *fields)
            self._announce(pipe, f"{service}.{request_type}")
            pipe.execute()
        deleted = [self._describe(f, deleted=True) for f in fields]
        for entry in deleted:
            emit(config_delete, self, service=service, request_type=request_type, version=entry["version"])
        return deleted

    @staticmethod
    def _describe(field: str, **state) -> dict:
        service, request_type, version = Keys.parse_field(field)
        return {"service": service, "request_type": request_type, "version": version, **state}

    def set_detail_error(self, enabled: bool) -> dict:
        """Switch ``Internal Server Error: <detail>`` on or off for every gateway at once."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.runtime, "detail_error", json.dumps(enabled))
            pipe.publish(self.keys.events, json.dumps({"event": "runtime", "subject": "detail_error"}))
            pipe.execute()
        return {"detail_error": enabled}

    # ------------------------------------------------------------------ diagnostics

    def pushed_services(self) -> dict:
        """Per service: the last accepted push (or pull): config_version, nodes, functions."""
        raw = self.client.hgetall(self.keys.pushed)
        services = {}
        for name, value in sorted(raw.items()):
            record = json.loads(value)
            services[name.decode()] = {
                "config_version": record.get("config_version"),
                "source": record.get("source"),
                "nodes": record.get("nodes", []),
                "functions": len(record.get("functions", [])),
                "accepted_at_ms": record.get("accepted_at_ms"),
            }
        return services

    def verify(self, service: str, config_version: str) -> dict:
        """``matched``, ``mismatch`` (with the stored version) or ``not_found`` (reference §3.5)."""
        raw = self.client.hget(self.keys.pushed, service)
        if raw is None:
            return {"service": service, "status": "not_found"}
        stored = json.loads(raw).get("config_version")
        if stored == config_version:
            return {"service": service, "status": "matched", "config_version": stored}
        return {"service": service, "status": "mismatch", "config_version": config_version, "stored": stored}

    def cache_status(self) -> dict:
        """What the registry holds: function counts per service, live nodes, pull mode."""
        configs, overrides = self._configs()
        _, nodes = self.registry.load_nodes()
        by_service: dict[str, dict] = {}
        for field, config in configs.items():
            entry = by_service.setdefault(config.service, {"functions": 0, "disabled": 0})
            entry["functions"] += 1
            entry["disabled"] += bool(overrides.get(field, config.disabled))
        runtime = {k.decode(): json.loads(v) for k, v in self.client.hgetall(self.keys.runtime).items()}
        return {
            "status": "ok",
            "count": len(configs),
            "services": sorted(by_service),
            "by_service": dict(sorted(by_service.items())),
            "nodes": {node_id: sorted(node.services) for node_id, node in sorted(nodes.items())},
            "failed_configs": self.failed.count(),
            "runtime": runtime,
            "pull": pull_status(self.client, self.keys),
        }

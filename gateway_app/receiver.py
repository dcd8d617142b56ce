"""Accepting a worker's PushConfig (or pull answer) into the registry (reference §3.5).

Workers never write the served registry themselves: they queue PushConfigs in Redis and a
gateway process checks each one, in this order:

1. the shape of the PushConfig (service, nodes, config_version, fun_configs);
2. the push token: with ``GENAPI_PUSH_TOKEN`` set, the HMAC signature must match;
3. idempotency: the service's stored ``config_version`` equals the pushed one (and its
   functions are still registered) → skipped, unless the push is forced;
4. each FunConfig: schema, hard denylist, ``GENAPI_REGISTRATION_ALLOWLIST``. Invalid ones
   are dropped and recorded; the valid ones are registered (partial success).

Every refusal is recorded in the failed configs; the outcome goes back to the worker (it
logs it). One process handles each push: the inbox is a list popped with ``BRPOP``.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

from workers import pushconfig, signals
from workers.allowlist import Allowlist, registration_refusal
from workers.errors import FunConfigError
from workers.funconfig import FunConfig, load_funconfig
from workers.protocol import Keys
from workers.registry import redis_now_ms
from workers.signals import emit

from .failed_configs import FailedConfigs

log = logging.getLogger("genapi.registry")

#: how long a push's outcome waits for the worker to read it (seconds)
OUTCOME_TTL = 300


def structural_problems(data: dict) -> list[str]:
    """The PushConfig checks of reference §3.5, in its order, with its messages."""
    problems = []
    service = data.get("service")
    if not isinstance(service, str) or not service:
        problems.append("service must not be nil")
    nodes = data.get("nodes")
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) and n for n in nodes):
        problems.append("nodes must be a non-empty list of atoms or strings")
    version = data.get("config_version")
    if not isinstance(version, str) or not version:
        problems.append("config_version must be a non-empty string")
    configs = data.get("fun_configs")
    if not isinstance(configs, list) or not configs or not all(isinstance(c, dict) for c in configs):
        problems.append("fun_configs must be a non-empty list of FunConfig structs")
    elif isinstance(service, str) and any(c.get("service", service) != service for c in configs):
        problems.append("all fun_configs must have the same service name as the push config")
    return problems


def _normalised(config: dict, service: str) -> dict:
    """The service name is the push's; an empty or ``0.0.0`` version means unversioned."""
    config = {**config, "service": service}
    if config.get("version") in ("", "0.0.0"):
        config["version"] = None
    return config


class Receiver:
    """Checks pushes and pull answers, and writes what passes into the registry."""

    def __init__(self, client: redis.Redis, keys: Keys, failed: FailedConfigs, push_token: str | None,
                 allowlist: Allowlist | None) -> None:
        self.client = client
        self.keys = keys
        self.failed = failed
        self.push_token = push_token
        self.allowlist = allowlist
        self._stop = threading.Event()

    # ------------------------------------------------------------------ one push

    def accept(self, data: Any, source: str = "push", force: bool = False) -> dict:
        """Check one PushConfig and register what passes; returns the outcome."""
        if not isinstance(data, dict):
            self.failed.record(source, None, None, None, None, "invalid push config data", repr(data)[:2000])
            return {"status": "error", "error": "invalid_push_config_data", "reasons": ["not a JSON object"]}
        service = data.get("service")
        node = (data.get("nodes") or [None])[0] if isinstance(data.get("nodes"), list) else None
        summary = {k: data.get(k) for k in ("service", "nodes", "config_version", "push_id")}
        problems = structural_problems(data)
        if problems:
            self.failed.record(source, service, None, None, node, problems, summary)
            return {"status": "error", "error": "validation_failed", "reasons": problems}
        if self.push_token is not None and not pushconfig.signature_valid(data, self.push_token):
            reason = ("missing push signature" if not data.get(pushconfig.SIGNATURE)
                      else "invalid push signature (GENAPI_PUSH_TOKEN differs)")
            self.failed.record(source, service, None, None, node, reason,
                               {**summary, "functions": [c.get("request_type") for c in data["fun_configs"]]})
            log.warning("refused the %s of %s from %s: %s", source, service, node, reason)
            return {"status": "error", "error": "invalid_push_token", "reasons": [reason]}
        if not (force or data.get("force") is True) and self._unchanged(service, data["config_version"]):
            return {"status": "skipped", "reason": "version_matches", "config_version": data["config_version"]}

        accepted: list[FunConfig] = []
        rejected: list[dict] = []
        for raw in data["fun_configs"]:
            raw = _normalised(raw, service)
            reason = None
            try:
                config = load_funconfig(raw)
            except FunConfigError as exc:
                reason = str(exc)
            else:
                reason = registration_refusal(config, self.allowlist)
            if reason is None:
                accepted.append(config)
                continue
            rejected.append({"function": f"{service}.{raw.get('request_type')}", "version": raw.get("version"),
                             "reason": reason})
            self.failed.record(source, service, raw.get("request_type"), raw.get("version"), node, reason, raw)
            log.warning("refused %s.%s from %s: %s", service, raw.get("request_type"), node, reason)
        if not accepted:
            return {"status": "error", "error": "all_invalid", "reasons": [r["reason"] for r in rejected],
                    "rejected": rejected}
        self._store(service, data, accepted, source)
        log.info("registered %d function(s) of %s (config_version %s) from %s", len(accepted), service,
                 data["config_version"], node)
        return {"status": "accepted", "count": len(accepted), "rejected": rejected,
                "config_version": data["config_version"]}

    def _unchanged(self, service: str, version: str) -> bool:
        raw = self.client.hget(self.keys.pushed, service)
        if raw is None:
            return False
        stored = json.loads(raw)
        if stored.get("config_version") != version:
            return False
        fields = stored.get("functions") or []
        # an operator deleted (or retention pruned) one of them since: register them again
        return all(self.client.hmget(self.keys.functions, fields)) if fields else True

    def _store(self, service: str, data: dict, configs: list[FunConfig], source: str) -> None:
        fields = {Keys.function_field(*c.key): json.dumps(c.to_json()) for c in configs}
        record = {
            "service": service,
            "config_version": data["config_version"],
            "nodes": data["nodes"],
            "functions": sorted(fields),
            "source": source,
            "accepted_at_ms": redis_now_ms(self.client),
        }
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.functions, mapping=fields)
            pipe.hset(self.keys.pushed, service, json.dumps(record))
            pipe.publish(self.keys.events, json.dumps({"event": "functions", "subject": service}))
            pipe.execute()
        if source == "push":
            emit(signals.config_push, self, count=len(configs), service=service, version=data["config_version"])
        emit(signals.config_batch_add, self, count=len(configs), service=service)
        for config in configs:
            emit(signals.config_add, self, service=config.service, request_type=config.request_type,
                 version=config.version)

    # ------------------------------------------------------------------ the inbox

    def handle(self, raw: bytes | str) -> dict:
        """One queued push: decode, accept, leave the outcome for the worker."""
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        outcome = self.accept(data, source="push")
        push_id = data.get("push_id") if isinstance(data, dict) else None
        if isinstance(push_id, str) and push_id:
            self.client.set(self.keys.push_result(push_id), json.dumps(outcome), ex=OUTCOME_TTL)
        return outcome

    def drain(self) -> int:
        """Handle every push already waiting (at start-up, before serving); returns how many."""
        handled = 0
        while (raw := self.client.rpop(self.keys.push_inbox)) is not None:
            self._handle_safely(raw)
            handled += 1
        return handled

    def _handle_safely(self, raw: bytes) -> None:
        try:
            self.handle(raw)
        except redis.RedisError:
            raise
        except Exception:
            log.exception("could not handle a push")

    def run(self) -> None:
        """Pop and handle pushes until :meth:`stop` (one thread per gateway process)."""
        backoff = 0.1
        while not self._stop.is_set():
            try:
                item = self.client.brpop([self.keys.push_inbox], timeout=1)
                backoff = 0.1
                if item is not None:
                    self._handle_safely(item[1])
            except redis.RedisError as exc:
                log.warning("push inbox unavailable (%s); retrying in %.1fs", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def stop(self) -> None:
        self._stop.set()

"""Pull mode: the gateway asks a service's workers for their configs (reference §3.4).

For each service in ``GENAPI_SERVICE_CONFIGS`` a round sends the control task
``genapi:describe`` to the service's queue, with the config version the registry already
has from it. A live worker answers on a Redis list: ``unchanged`` (the round skips the
service: nothing is rewritten) or its PushConfig, which goes through the same checks as a
push (signature, schema, allowlist; refusals are recorded).

Rounds run every ``GENAPI_PULL_INTERVAL`` on one gateway process at a time
(:class:`~gateway_app.leases.SharedSchedule`); after a round where every service failed the
delay doubles, up to 300 s. ``genapi admin pull [SERVICE]`` forgets the stored versions and
asks for a round now. Counters per service (pulled, skipped, failed) are kept in Redis.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import redis

from workers import signals
from workers.protocol import DESCRIBE_TASK, Keys, service_queue
from workers.registry import Registry, redis_now_ms
from workers.signals import emit

from .receiver import Receiver

log = logging.getLogger("genapi.registry")

MAX_BACKOFF = 300.0
ALL = "*"
OUTCOMES = ("pulled", "skipped", "failed")


def next_delay(interval: float, failures: int) -> float:
    """The wait before the next round: the interval, doubled per failed round, capped."""
    if failures <= 0:
        return interval
    return min(interval * 2 ** failures, max(MAX_BACKOFF, interval))


def request_pull(client: redis.Redis, keys: Keys, services: list[str] | None) -> None:
    """Ask the gateways for a forced pull of ``services`` (``None``: every configured one)."""
    with client.pipeline(transaction=True) as pipe:
        if services:
            pipe.hdel(keys.pull_versions, *services)
            pipe.sadd(keys.pull_force, *services)
        else:
            pipe.delete(keys.pull_versions)
            pipe.sadd(keys.pull_force, ALL)
        pipe.publish(keys.events, json.dumps({"event": "pull", "subject": ",".join(services or [ALL])}))
        pipe.execute()


def pull_status(client: redis.Redis, keys: Keys) -> dict:
    """Rounds, failures, and per service: the last outcome, its version and the counters."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.pull_state)
        pipe.hgetall(keys.pull_stats)
        pipe.hgetall(keys.pull_versions)
        state, stats, versions = pipe.execute()
    state = {k.decode(): json.loads(v) for k, v in state.items()}
    round_info = state.pop("_round", {"rounds": 0, "failures": 0})
    services: dict[str, dict] = {name: {**value} for name, value in state.items()}
    for key, count in stats.items():
        name, _, outcome = key.decode().rpartition(":")
        services.setdefault(name, {}).setdefault("counts", {o: 0 for o in OUTCOMES})[outcome] = int(count)
    for name, version in versions.items():
        services.setdefault(name.decode(), {})["config_version"] = version.decode()
    for value in services.values():
        value.setdefault("counts", {o: 0 for o in OUTCOMES})
    return {**round_info, "services": services}


class Puller:
    """One pull round over the configured (or forced) services."""

    def __init__(self, client: redis.Redis, keys: Keys, registry: Registry, receiver: Receiver, dispatcher,
                 services: tuple[str, ...], interval: float, timeout: float) -> None:
        self.client = client
        self.keys = keys
        self.registry = registry
        self.receiver = receiver
        self.dispatcher = dispatcher
        self.services = services
        self.interval = interval
        self.timeout = timeout

    def forced(self) -> bool:
        """Has an operator asked for a pull? (checked between scheduled rounds)"""
        return bool(self.client.scard(self.keys.pull_force))

    def _take_forced(self) -> set[str]:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.smembers(self.keys.pull_force)
            pipe.delete(self.keys.pull_force)
            members, _ = pipe.execute()
        return {m.decode() for m in members}

    def round(self) -> float:
        """Pull every due service in parallel; returns the delay until the next round."""
        forced = self._take_forced()
        services = set(self.services)
        if forced:
            services = services | (forced - {ALL}) if ALL in forced else forced
        if not services and not forced:
            return self.interval
        versions = {k.decode(): v.decode() for k, v in self.client.hgetall(self.keys.pull_versions).items()}
        outcomes: dict[str, tuple[str, str]] = {}

        def pull(service: str) -> None:
            started = time.monotonic()
            emit(signals.config_pull_start, self, system_time=time.time_ns(), service=service)
            try:
                outcomes[service] = self.pull_one(service, versions.get(service))
            except Exception as exc:  # one service's trouble must not stop the others
                log.exception("pull of %s failed", service)
                outcomes[service] = ("failed", f"{type(exc).__name__}: {exc}")
            kind = outcomes[service][0]
            version = self.client.hget(self.keys.pull_versions, service) if kind != "failed" else None
            emit(signals.config_pull_stop, self, duration=time.monotonic() - started,
                 count=1 if kind == "pulled" else 0, service=service,
                 version=version.decode() if version else None)

        threads = [threading.Thread(target=pull, args=(s,), name=f"genapi-pull-{s}", daemon=True)
                   for s in sorted(services)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(self.timeout + 1)
        for service in services:
            outcomes.setdefault(service, ("failed", f"no answer within {self.timeout:g}s"))
        return self._record(outcomes)

    def pull_one(self, service: str, known_version: str | None) -> tuple[str, str]:
        """(outcome, detail) of pulling one service."""
        _, nodes = self.registry.load_nodes()
        if not any(service in node.services for node in nodes.values()):
            return "failed", f"no live worker serves {service}"
        reply_key = self.keys.pull_reply(uuid.uuid4().hex)
        self.dispatcher.send(DESCRIBE_TASK, {"service": service, "known_version": known_version,
                                             "reply_key": reply_key},
                             service_queue(service), self.timeout, None)
        item = self.client.blpop([reply_key], timeout=self.timeout)
        if item is None:
            return "failed", f"no answer within {self.timeout:g}s"
        answer = json.loads(item[1])
        if not isinstance(answer, dict) or answer.get("error"):
            return "failed", str(answer.get("error") if isinstance(answer, dict) else answer)
        if answer.get("unchanged"):
            return "skipped", f"config_version {answer.get('config_version')} unchanged"
        outcome = self.receiver.accept(answer, source="pull", force=True)
        if outcome["status"] != "accepted":
            return "failed", "; ".join(outcome.get("reasons", [outcome.get("error", "refused")]))
        self.client.hset(self.keys.pull_versions, service, answer["config_version"])
        rejected = f", {len(outcome['rejected'])} refused" if outcome["rejected"] else ""
        return "pulled", f"{outcome['count']} function(s){rejected}"

    def _record(self, outcomes: dict[str, tuple[str, str]]) -> float:
        raw = self.client.hget(self.keys.pull_state, "_round")
        info = json.loads(raw) if raw else {"rounds": 0, "failures": 0}
        failed = sum(1 for kind, _ in outcomes.values() if kind == "failed")
        success = failed < len(outcomes) or not outcomes
        if success and info["failures"]:
            log.info("pull mode recovered after %d failed round(s)", info["failures"])
        info["failures"] = 0 if success else info["failures"] + 1
        info["rounds"] += 1
        now = redis_now_ms(self.client)
        delay = next_delay(self.interval, info["failures"])
        info.update(finished_at_ms=now, next_in_s=delay)
        with self.client.pipeline(transaction=False) as pipe:
            for service, (kind, detail) in outcomes.items():
                pipe.hincrby(self.keys.pull_stats, f"{service}:{kind}", 1)
                pipe.hset(self.keys.pull_state, service, json.dumps({"last": kind, "detail": detail, "at_ms": now}))
                (log.warning if kind == "failed" else log.info)("pull of %s: %s (%s)", service, kind, detail)
            pipe.hset(self.keys.pull_state, "_round", json.dumps(info))
            pipe.execute()
        return delay

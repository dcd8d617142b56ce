"""Circuit breakers (reference §10, done properly): one per service, one per (service, worker).

What trips them: consecutive real failures — a call that timed out, a worker lost under a
call, an exception the function did not mean to raise. Not a deliberate error result
(``GenApiError``), and nothing refused before or instead of running (validation,
permission, rate limit, hooks). ``service_threshold`` / ``worker_threshold`` consecutive
failures open a breaker for ``cooldown_ms``; any success resets the count.

* An open **service** breaker answers ``Service temporarily unavailable`` (``can_retry``)
  before anything is dispatched. Once the cooldown is over, one trial call is let through
  (every gateway agrees which: a claim in Redis); its success closes the breaker, its
  failure opens it for another cooldown.
* An open **worker** breaker takes that worker out of node selection (for ``"any"`` too:
  the call then goes to a healthy worker's own queue). After the cooldown the worker is
  eligible again; its next failure re-opens the breaker at once, its next success closes it.

State lives in Redis (one hash per breaker that has any, changed only by the scripts
below, each one atomic), so every gateway agrees. Each gateway keeps a local view of the
breakers that have state, updated by the events the scripts publish and re-read every few
seconds, so a call whose breakers are closed and clean costs no Redis round trip at all;
a success costs one only while its breaker has failures on record.

Why not pybreaker (checked: 1.4.1 with ``CircuitRedisStorage``): it guards a synchronous
``call(func)``, while our calls end later on the reply listener; it reads the state from
Redis on every call and writes the failure counter on every success (two to four round
trips per call for our two breakers); and its half-open state lets every call through
rather than one trial.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from workers.policy_config import BreakerConfig
from workers.protocol import Keys
from workers.signals import (
    breaker_state_change,
    emit,
    worker_pool_circuit_breaker_close,
    worker_pool_circuit_breaker_open,
)

from . import errors

if TYPE_CHECKING:
    from .deliveries import Pending
    from .extension import Gateway
    from .replies import Outcome

log = logging.getLogger("genapi.breakers")

#: outcomes that count as a failure of the service (and of its worker, when known)
FAILURES = frozenset({"timeout", "lost"})
#: outcomes that show the service working
SUCCESSES = frozenset({"result", "last", "end"})
#: how often the local view is re-read from Redis, in case an event was missed
RELOAD_EVERY = 5.0

# KEYS: breaker hash, names set, events channel. ARGV: name, now_ms, threshold, cooldown_ms.
_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local now = tonumber(ARGV[2])
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_until_ms') or '0')
local changed = failures == 1
if opened > 0 then
  if now >= opened then
    opened = now + tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], 'opened_until_ms', opened, 'trial_until_ms', 0)
    changed = true
  end
elseif failures >= tonumber(ARGV[3]) then
  opened = now + tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'opened_until_ms', opened)
  changed = true
end
redis.call('PEXPIRE', KEYS[1], math.max(2 * tonumber(ARGV[4]), 3600000))
redis.call('SADD', KEYS[2], ARGV[1])
if changed then
  redis.call('PUBLISH', KEYS[3], cjson.encode({event = 'breaker', name = ARGV[1], failures = failures,
                                               opened_until_ms = opened}))
end
return {failures, opened}
"""

# KEYS: breaker hash, names set, events channel. ARGV: name, now_ms. Closes (forgets) the
# breaker unless it is open and its cooldown is not over (a late success of an old call).
_SUCCESS = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_until_ms') or '0')
if opened > 0 and tonumber(ARGV[2]) < opened then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], cjson.encode({event = 'breaker', name = ARGV[1], failures = 0, opened_until_ms = 0}))
return 1
"""

# KEYS: breaker hash. ARGV: now_ms, trial_ms. 1: this call may go (closed, or it is the trial).
_TRIAL = """
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_until_ms') or '0')
local now = tonumber(ARGV[1])
if opened == 0 then return 1 end
if now < opened then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'trial_until_ms') or '0') > now then return 0 end
redis.call('HSET', KEYS[1], 'trial_until_ms', now + tonumber(ARGV[2]))
return 1
"""


def service_breaker(service: str) -> str:
    return f"service:{service}"


def worker_breaker(service: str, node: str) -> str:
    return f"worker:{service}:{node}"


@dataclass(frozen=True)
class View:
    """What this gateway knows of one breaker that has state."""

    failures: int
    opened_until_ms: int

    def open_at(self, now_ms: float) -> bool:
        """Refusing calls (cooldown not over)."""
        return self.opened_until_ms > 0 and now_ms < self.opened_until_ms


def _now_ms() -> int:
    return int(time.time() * 1000)


class Breakers:
    """The breakers as one gateway process sees them, and the after-call hook that feeds them."""

    def __init__(self, client: redis.Redis, keys: Keys, config: BreakerConfig) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self.views: dict[str, View] = {}
        self._failure = client.register_script(_FAILURE)
        self._success = client.register_script(_SUCCESS)
        self._trial = client.register_script(_TRIAL)
        self._loaded = 0.0

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    # ------------------------------------------------------------------ before dispatch

    def admit(self, service: str, timeout_ms: int | None) -> None:
        """Raise ``Service temporarily unavailable`` while the service's breaker is open;
        after its cooldown let exactly one trial call through."""
        view = self.views.get(service_breaker(service))
        if view is None or not view.opened_until_ms:
            return
        now = _now_ms()
        if view.open_at(now):
            raise errors.unavailable("breaker_open")
        trial_ms = timeout_ms or self.config.cooldown_ms
        try:
            granted = self._trial(keys=[self.keys.breaker(service_breaker(service))], args=[now, trial_ms])
        except redis.RedisError as exc:
            log.warning("could not claim the trial call of %s's breaker (%s); letting the call through", service, exc)
            return
        if not granted:
            raise errors.unavailable("breaker_open")
        log.info("breaker of service %s: cooldown over, one trial call goes through", service)
        _changed(self, service_breaker(service), "half_open", "open")

    def open_workers(self, service: str) -> set[str]:
        """Workers of ``service`` whose breaker refuses calls now."""
        if not self.views:
            return set()
        prefix, now = f"worker:{service}:", _now_ms()
        return {name[len(prefix):] for name, view in self.views.items()
                if name.startswith(prefix) and view.open_at(now)}

    # ------------------------------------------------------------------ after a call

    def after_call(self, gateway: Gateway, pending: Pending, outcome: Outcome) -> bool:
        """Count the attempt's outcome; never takes the call over."""
        if pending.config is None:
            return False
        kind = outcome.kind
        failed = kind in FAILURES or (kind == "error" and outcome.unexpected)
        if not failed and (not self.views or (kind not in SUCCESSES and kind != "error")):
            return False  # a success with no breaker on record, or an outcome that says nothing
        service, node = pending.config.service, outcome.node or pending.node
        names = [(service_breaker(service), self.config.service_threshold)]
        if node:
            names.append((worker_breaker(service, node), self.config.worker_threshold))
        if failed:
            self._record_failures(names)
        else:
            self._record_successes([name for name, _ in names if name in self.views])
        return False

    def _record_failures(self, names: list[tuple[str, int]]) -> None:
        now = _now_ms()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for name, threshold in names:
                    self._failure(keys=[self.keys.breaker(name), self.keys.breakers, self.keys.events],
                                  args=[name, now, threshold, self.config.cooldown_ms], client=pipe)
                states = pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not record a failure on breakers %s: %s", [n for n, _ in names], exc)
            return
        for (name, _), (failures, opened_until) in zip(names, states, strict=True):
            before = self.views.get(name, View(0, 0))
            was_open = before.open_at(now)
            self.views[name] = View(int(failures), int(opened_until))
            if not was_open and self.views[name].open_at(now):
                log.warning("breaker %s opened after %s consecutive failures, for %d ms", name, failures,
                            self.config.cooldown_ms)
                emit(worker_pool_circuit_breaker_open, self, pool_name=name, consecutive_failures=int(failures))
                _changed(self, name, "open", "half_open" if before.opened_until_ms else "closed")

    def _record_successes(self, names: list[str]) -> None:
        if not names:
            return
        now = _now_ms()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    self._success(keys=[self.keys.breaker(name), self.keys.breakers, self.keys.events],
                                  args=[name, now], client=pipe)
                closed = pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not record a success on breakers %s: %s", names, exc)
            return
        for name, done in zip(names, closed, strict=True):
            if done:
                view = self.views.pop(name, None)
                if view is not None and view.opened_until_ms:
                    log.warning("breaker %s closed: the trial call succeeded", name)
                    emit(worker_pool_circuit_breaker_close, self, pool_name=name)
                    _changed(self, name, "closed", "half_open")

    # ------------------------------------------------------------------ keeping the view

    def on_event(self, event: dict) -> None:
        """A breaker changed somewhere (published by the scripts above)."""
        name = event.get("name")
        if not isinstance(name, str):
            return
        failures, opened = int(event.get("failures") or 0), int(event.get("opened_until_ms") or 0)
        if failures or opened:
            self.views[name] = View(failures, opened)
        else:
            self.views.pop(name, None)

    def load(self, force: bool = False) -> None:
        """Re-read every breaker that has state (at start, then every few seconds)."""
        if not force and time.monotonic() - self._loaded < RELOAD_EVERY:
            return
        self._loaded = time.monotonic()
        self.views = {name: View(state["failures"], state["opened_until_ms"]) for name, state in self.states().items()}

    def states(self) -> dict[str, dict]:
        """Every breaker with state, as stored: ``failures``, ``opened_until_ms``, ``trial_until_ms``."""
        names = sorted(n.decode() for n in self.client.smembers(self.keys.breakers))
        if not names:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.breaker(name))
            stored = pipe.execute()
        states = {}
        for name, fields in zip(names, stored, strict=True):
            if fields:
                states[name] = {k.decode(): int(v) for k, v in fields.items()}
                states[name].setdefault("failures", 0)
                states[name].setdefault("opened_until_ms", 0)
        return states


def _changed(breakers: Breakers, name: str, state: str, previous: str) -> None:
    emit(breaker_state_change, breakers, name=name, scope=name.partition(":")[0], state=state, previous=previous)


def describe(states: dict[str, dict], now_ms: int | None = None) -> list[dict]:
    """Breakers for operators (``genapi pool-status``): name, scope, service, node, state."""
    now = _now_ms() if now_ms is None else now_ms
    listing = []
    for name, state in sorted(states.items()):
        scope, _, rest = name.partition(":")
        service, _, node = rest.partition(":")
        opened = state.get("opened_until_ms", 0)
        listing.append({
            "name": name, "scope": scope, "service": service, "node": node or None,
            "state": "closed" if not opened else "open" if now < opened else "half_open",
            "failures": state.get("failures", 0), "opened_until_ms": opened or None,
        })
    return listing

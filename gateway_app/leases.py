"""Shared periodic work: one gateway process at a time does it, on one shared schedule.

Every gateway process runs the same background jobs (pull mode, registry retention). A
:class:`SharedSchedule` keeps the job's next due time in Redis and a lease (``SET NX PX``),
so however many gateway processes run, each round happens once, on time, and a process
that dies mid-round only holds the lease until it expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from workers.protocol import Keys
from workers.registry import redis_now_ms

log = logging.getLogger("genapi.registry")

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Lease:
    """A named lock with an expiry, held by one owner."""

    def __init__(self, client: redis.Redis, keys: Keys, name: str, owner: str) -> None:
        self.client = client
        self.key = keys.lease(name)
        self.owner = owner
        self._release = client.register_script(_RELEASE)

    def acquire(self, ttl: float) -> bool:
        return bool(self.client.set(self.key, self.owner, nx=True, px=max(1, int(ttl * 1000))))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.owner])


class SharedSchedule:
    """Runs ``job()`` whenever it is due, on one gateway process at a time.

    ``job`` returns the delay (seconds) until its next round. The due time lives in the
    hash field ``<name>:next`` of ``state_key`` on the Redis clock; :meth:`wake` asks for a
    round now (a forced pull), and ``due_now()`` lets a job say it has work regardless.
    """

    #: seconds before the next round after a round that raised
    RETRY_AFTER = 10.0

    def __init__(self, client: redis.Redis, keys: Keys, name: str, owner: str, job: Callable[[], float],
                 lease_ttl: float, tick: float = 1.0, due_now: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.name = name
        self.state_key = f"{keys.prefix}schedule"
        self.lease = Lease(client, keys, name, owner)
        self.job = job
        self.lease_ttl = lease_ttl
        self.tick = tick
        self.due_now = due_now
        self._stop = threading.Event()
        self._wake = threading.Event()

    def _due(self) -> bool:
        raw = self.client.hget(self.state_key, f"{self.name}:next")
        if raw is None or int(raw) <= redis_now_ms(self.client):
            return True
        return bool(self.due_now and self.due_now())

    def run_once(self) -> bool:
        """Run a round if it is due and the lease is free; returns whether it ran."""
        if not self._due() or not self.lease.acquire(self.lease_ttl):
            return False
        try:
            if not self._due():  # another process ran it between our check and our lease
                return False
            try:
                delay = self.job()
            except redis.RedisError:
                raise
            except Exception:  # a bug in one round must not turn into a round every tick
                log.exception("%s: round failed; next try in %ss", self.name, self.RETRY_AFTER)
                delay = self.RETRY_AFTER
            self.client.hset(self.state_key, f"{self.name}:next", redis_now_ms(self.client) + int(delay * 1000))
        finally:
            self.lease.release()
        return True

    def run(self) -> None:
        """Loop until :meth:`stop` (one thread per gateway process)."""
        while not self._stop.is_set():
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning("%s: Redis unavailable (%s)", self.name, exc)
            except Exception:
                log.exception("%s: round failed", self.name)
            self._wake.wait(self.tick)
            self._wake.clear()

    def wake(self) -> None:
        """Check now instead of at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

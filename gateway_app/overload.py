"""Graceful overload: refuse a call before dispatch when too much already waits.

Two limits, both answered ``Service temporarily unavailable`` (``can_retry: true``) by the
pipeline step :class:`LimitOverload`, just before dispatch, in every mode (``none``
included):

* ``GENAPI_MAX_IN_FLIGHT``: calls dispatched on one connection and not yet settled.
  :class:`InFlight` counts them; :mod:`gateway_app.replies` adds a call when it starts and
  removes it when it is settled (a retry stays the same call). A ``none`` call is settled
  the moment it is sent, so it never counts, but it is refused like the others while the
  connection is at its cap. Built-in services never reach the step.
* ``GENAPI_MAX_QUEUE_LENGTH``: messages waiting in the queue the call would be sent to.
  :class:`QueueLengths` keeps, per queue calls were recently sent to, the last ``LLEN``
  read by a background thread (one pipelined round trip every 100 ms) plus the calls this
  process admitted to it since that read, so the call path never waits for Redis and a
  burst inside one interval is bounded too. Redis brokers only.

On the call path each limit costs a dict lookup and a comparison. ``0`` switches a limit off.

:class:`Backoff` paces a connection after any ``Service temporarily unavailable`` refusal
(these limits, an open breaker, no live worker): its next frame is read a little later.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import redis

from . import errors

if TYPE_CHECKING:
    from .extension import Gateway
    from .pipeline import Call

log = logging.getLogger("genapi.gateway")

#: seconds between two samples of the queue lengths
SAMPLE_INTERVAL = 0.1
#: samples in a row without a call to a queue after which it is no longer sampled (60 s)
IDLE_SAMPLES = 600
#: seconds without a successful sample after which the queue limit is not applied (fail open)
STALE_AFTER = 1.0
#: the longest wait between two attempts while Redis does not answer
MAX_BACKOFF = 2.0
#: seconds a connection's reading pauses after its first unavailable refusal in a row (see Backoff)
READ_PAUSE = 0.05
#: the longest such pause (reached after four refusals in a row)
MAX_READ_PAUSE = 0.5
#: broker URL schemes whose queues are Redis lists (as ``dispatch.for_broker`` decides)
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class InFlight:
    """Calls dispatched on each connection and not yet settled."""

    def __init__(self) -> None:
        self._counts: dict[Any, int] = {}
        self._lock = threading.Lock()

    def of(self, conn: Any) -> int:
        """How many calls of ``conn`` are in flight."""
        return self._counts.get(conn, 0)

    def add(self, conn: Any) -> None:
        """A call of ``conn`` was started."""
        with self._lock:
            self._counts[conn] = self._counts.get(conn, 0) + 1

    def remove(self, conn: Any) -> None:
        """A call of ``conn`` was settled (a connection with none left is forgotten)."""
        with self._lock:
            left = self._counts.get(conn, 0) - 1
            if left > 0:
                self._counts[conn] = left
            else:
                self._counts.pop(conn, None)

    def __len__(self) -> int:
        """Connections with at least one call in flight."""
        return len(self._counts)


class QueueLevel:
    """What this process knows of one queue's length."""

    __slots__ = ("sampled", "sent", "touched", "idle")

    def __init__(self) -> None:
        #: the queue's length at the last sample
        self.sampled = 0
        #: calls this process admitted to the queue since that sample was asked for
        self.sent = 0
        #: a call was checked against this queue since the last sample
        self.touched = True
        #: samples in a row with no call checked
        self.idle = 0

    @property
    def estimate(self) -> int:
        return self.sampled + self.sent


class QueueLengths:
    """The estimated length of each queue calls were recently sent to, kept current by
    :meth:`run` (a background thread): ``LLEN`` of every such queue in one pipeline every
    ``interval`` seconds.

    While Redis does not answer, the thread logs once, backs off (up to 2 s between
    attempts) and keeps the last values; after ``stale_after`` seconds without a sample,
    :attr:`fresh` turns false and the limit is not applied until a sample succeeds (fail
    open: a stale count would refuse calls a draining queue could take, and a broker that
    is really down makes the dispatch itself fail with ``Service temporarily unavailable``).
    """

    def __init__(self, client: redis.Redis, interval: float = SAMPLE_INTERVAL, idle_samples: int = IDLE_SAMPLES,
                 stale_after: float = STALE_AFTER) -> None:
        self.client = client
        self.interval = interval
        self.idle_samples = idle_samples
        self.stale_after = stale_after
        self.levels: dict[str, QueueLevel] = {}
        #: the last sample is recent enough to act on
        self.fresh = True
        self._last_ok = time.monotonic()
        self._stop = threading.Event()

    @classmethod
    def for_broker(cls, broker_url: str) -> QueueLengths | None:
        """A sampler of a Redis broker's queues; ``None`` for another broker (the limit is
        not applied there)."""
        if not broker_url.startswith(REDIS_SCHEMES):
            return None
        return cls(redis.Redis.from_url(broker_url, socket_timeout=1.0, socket_connect_timeout=1.0))

    def level(self, queue: str) -> QueueLevel:
        """The queue's level, watched from now on if it was not."""
        level = self.levels.get(queue)
        if level is None:
            level = self.levels[queue] = QueueLevel()
        return level

    def sample(self) -> None:
        """Read the length of every watched queue in one round trip; forget the queues no
        call was checked against for ``idle_samples`` samples."""
        watched = [(queue, level, level.sent) for queue, level in list(self.levels.items())]
        if not watched:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for queue, _, _ in watched:
                pipe.llen(queue)
            lengths = pipe.execute()
        for (queue, level, sent_before), length in zip(watched, lengths, strict=True):
            level.sampled = length
            level.sent -= sent_before  # calls admitted during the round trip stay counted
            if level.touched:
                level.touched, level.idle = False, 0
            else:
                level.idle += 1
                if level.idle >= self.idle_samples and self.levels.get(queue) is level:
                    del self.levels[queue]

    def run(self) -> None:
        """Sample until :meth:`stop`, backing off while Redis does not answer."""
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                self.sample()
            except (redis.RedisError, OSError) as exc:
                delay = min(delay * 2, MAX_BACKOFF)
                self._failed(exc)
                continue
            delay = self.interval
            self._last_ok = time.monotonic()
            if not self.fresh:
                log.info("queue lengths are sampled again; GENAPI_MAX_QUEUE_LENGTH applies again")
                self.fresh = True

    def _failed(self, exc: Exception) -> None:
        if self.fresh and time.monotonic() - self._last_ok > self.stale_after:
            log.warning("cannot read the queue lengths (%s); GENAPI_MAX_QUEUE_LENGTH is not applied "
                        "until Redis answers again", exc)
            self.fresh = False

    def stop(self) -> None:
        self._stop.set()


class Backoff:
    """How long a connection's reading pauses after a ``Service temporarily unavailable``
    refusal (an overload limit, an open breaker, no live worker): READ_PAUSE, doubled for
    each refusal in a row, at most MAX_READ_PAUSE, times a random 0.5–1.5; a dispatched
    call starts over. The pipeline asks it (:func:`gateway_app.pipeline.run`).

    The refusal itself is sent at once. The pause only leaves the connection's next frames in
    its socket for a moment, so clients that resend a refused call at once cannot fill every
    turn of the process's loop with refusals (which made ``gateway/ping`` wait hundreds of ms
    in bench/bench_overload.py, first with the overload limits, then with an open breaker)."""

    def __init__(self) -> None:
        self._streak: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def refused(self, conn: Any) -> float:
        """Seconds ``conn`` waits before its next frame is read."""
        streak = self._streak.get(conn, 0)
        self._streak[conn] = streak + 1
        # jittered: connections refused together must not all come back in the same turn
        return min(MAX_READ_PAUSE, READ_PAUSE * 2 ** min(streak, 16)) * random.uniform(0.5, 1.5)

    def admitted(self, conn: Any) -> None:
        """``conn``'s call was dispatched: its next refusal pauses the shortest time again."""
        if self._streak:
            self._streak.pop(conn, None)


class LimitOverload:
    """The pipeline step: refuse when the connection has ``max_in_flight`` calls in flight,
    or the queue the call would be sent to holds ``max_queue_length`` messages; otherwise
    count the call against its queue. Placed just before dispatch, after every other check,
    so a request that would fail anyway gets that failure, not an invitation to retry."""

    def __init__(self, max_in_flight: int, max_queue_length: int, queues: QueueLengths | None) -> None:
        self.max_in_flight = max_in_flight
        self.max_queue_length = max_queue_length
        self.queues = queues if max_queue_length else None

    def __call__(self, gateway: Gateway, call: Call) -> None:
        if self.max_in_flight and gateway.replies.in_flight.of(call.conn) >= self.max_in_flight:
            raise errors.unavailable("in_flight_limit")
        queues = self.queues
        if queues is not None:
            level = queues.levels.get(call.choice.queue) or queues.level(call.choice.queue)
            level.touched = True
            if queues.fresh and level.sampled + level.sent >= self.max_queue_length:
                raise errors.unavailable("queue_full")
            level.sent += 1

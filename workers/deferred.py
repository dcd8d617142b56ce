"""Work taken off a request's path: done a moment later, in batches, by a thread of its own.

The gateway's per-request bookkeeping — its access line, its request counter and duration
histogram — does not change the answer, yet done inline it delays the next frame the
process reads. :data:`later` queues such work (a function and its argument, a deque append)
and a background thread (a greenlet under gevent) runs the queue every
:attr:`Later.INTERVAL` seconds, and at exit. What a process queued before it forked is its
own, never its child's.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("genapi.deferred")


class Later:
    """A queue of ``(function, argument)`` run by a background thread, in order."""

    #: seconds between two batches: how stale a log line or a counter may be
    INTERVAL = 0.2
    #: items run between two pauses of the background thread, and the pause (seconds)
    CHUNK = 8
    PAUSE = 0.0005
    #: a batch is run in at most this many steps: when a saturated process queues faster than
    #: CHUNK items per turn of its loop, the steps grow, so the queue (memory) stays bounded
    STEPS = 16

    def __init__(self) -> None:
        self._pending: collections.deque[tuple[int, Callable[[Any], None], Any]] = collections.deque()
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._sleep = time.sleep

    def put(self, function: Callable[[Any], None], argument: Any) -> None:
        """Run ``function(argument)`` soon, after what was put before it."""
        pid = os.getpid()
        self._pending.append((pid, function, argument))
        if self._pid != pid:
            self._start(pid)

    def _start(self, pid: int) -> None:
        with self._lock:
            if self._pid == pid:
                return
            self._pid = pid
            threading.Thread(target=self._run, name="genapi-later", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL)
            self.flush(pause_every=self.CHUNK)

    def flush(self, pause_every: int = 0) -> None:
        """Run everything queued, now (the thread does it every interval; also at exit, and
        before ``/metrics`` answers). With ``pause_every`` it steps aside after that many
        items, so frames that arrived meanwhile are served before the rest of the batch; with a
        backlog (a saturated process queues faster than that) the steps grow to 1/STEPS of
        what waits, so the queue, and the memory it holds, stays bounded."""
        pid = os.getpid()
        done = 0
        step = pause_every
        while True:
            if step and done >= step:
                self._sleep(self.PAUSE)  # under gevent: one turn of the loop, its sockets included
                done = 0
                step = max(pause_every, len(self._pending) // self.STEPS)  # what came meanwhile counts too
            try:
                owner, function, argument = self._pending.popleft()
            except IndexError:
                return
            done += 1
            if owner != pid:  # queued by the parent before a fork: the parent's to run
                continue
            try:
                function(argument)
            except Exception:  # one broken receiver must not stop the others, nor the thread
                log.exception("deferred %r failed", function)


#: the process's queue
later = Later()
atexit.register(later.flush)

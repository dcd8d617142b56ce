"""Requests waiting for a worker's reply, and their deadlines.

Each dispatched request that expects an answer is a :class:`Pending` entry under a
gateway-local ``ref``. Whoever takes the entry first — the reply listener or the deadline
sweeper — sends the one terminal frame; the other finds nothing. That is the whole
"exactly one terminal frame" rule.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("genapi.gateway")

#: timeouts fire up to this late (seconds), in exchange for few sweeper wake-ups under load
SWEEP_TICK = 0.05


@dataclass(eq=False)
class Pending:
    """Where a reply goes: the connection, the client's request id and the call's mode."""

    conn: Any
    request_id: Any
    response_type: str
    deadline: float | None  # time.monotonic() value, or None for "infinity"
    task: str | None = None
    #: the worker running it, once known (reported only for calls without a deadline)
    node: str | None = None


class Deliveries:
    """The table of pending requests of one gateway process."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._refs = itertools.count(1)
        self._wake = threading.Condition()
        self._stopped = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, pending: Pending) -> str:
        """Register a request before it is dispatched; returns its ref."""
        ref = str(next(self._refs))
        self._pending[ref] = pending
        if pending.deadline is not None:
            with self._wake:
                heapq.heappush(self._deadlines, (pending.deadline, ref))
                if self._deadlines[0][1] == ref:
                    self._wake.notify()
        return ref

    def take(self, ref: str) -> Pending | None:
        """Remove and return the entry (``None`` if already answered or timed out)."""
        return self._pending.pop(ref, None)

    def get(self, ref: str) -> Pending | None:
        return self._pending.get(ref)

    def without_deadline(self) -> list[tuple[str, Pending]]:
        """Entries no sweeper will ever time out (``timeout: "infinity"``)."""
        return [(ref, p) for ref, p in list(self._pending.items()) if p.deadline is None]

    def take_all(self) -> list[Pending]:
        """Remove and return every entry (the gateway is shutting down)."""
        taken = []
        for ref in list(self._pending):
            pending = self._pending.pop(ref, None)
            if pending is not None:
                taken.append(pending)
        return taken

    def drop_connection(self, conn: Any) -> int:
        """Forget every request of a closed connection; returns how many."""
        refs = [ref for ref, p in list(self._pending.items()) if p.conn is conn]
        for ref in refs:
            self._pending.pop(ref, None)
        return len(refs)

    def expire(self, now: float) -> list[Pending]:
        """Take every entry whose deadline passed."""
        expired = []
        with self._wake:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, ref = heapq.heappop(self._deadlines)
                pending = self._pending.pop(ref, None)
                if pending is not None:
                    expired.append(pending)
        return expired

    def run_sweeper(self, on_timeout: Callable[[Pending], None]) -> None:
        """Loop until :meth:`stop`: wait for the next deadline, time out what is due."""
        while True:
            with self._wake:
                if self._stopped:
                    return
                delay = self._deadlines[0][0] - time.monotonic() if self._deadlines else None
                if delay is None or delay > 0:
                    # at most one wake-up per tick: most deadlines belong to calls already answered
                    self._wake.wait(None if delay is None else max(delay, SWEEP_TICK))
            for pending in self.expire(time.monotonic()):
                try:
                    on_timeout(pending)
                except Exception:  # one broken connection must not stop the others' timeouts
                    log.exception("could not deliver a timeout")

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

"""Calls waiting for a worker's reply, and their deadlines.

Each dispatched call that expects an answer is a :class:`Pending` entry under a
gateway-local ``ref``; a retried call is entered again under a new ``ref``, so a late reply
of the failed attempt finds nothing. The table only stores and expires entries: whoever
takes an entry (:meth:`Deliveries.take`) owns it, and :mod:`gateway_app.replies` is the one
place that then ends the call with its terminal frame.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("genapi.gateway")

#: timeouts fire up to this late (seconds), in exchange for few sweeper wake-ups under load
SWEEP_TICK = 0.05


def call_key(request_id: Any) -> str:
    """A request id as a dict key: ids may be any JSON value, lists and objects included."""
    return json.dumps(request_id, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Handle:
    """What dispatching a call gave: the Celery task id, the queue, and the node when a
    particular worker was chosen (or once the worker said it started the call)."""

    task_id: str
    queue: str
    node: str | None = None


@dataclass(eq=False)
class Pending:
    """One call in flight: where its frames go, what it runs, and what was dispatched."""

    conn: Any
    request_id: Any
    response_type: str
    deadline: float | None  # time.monotonic() value, or None for "infinity"
    task: str | None = None
    #: the worker running it: the chosen one, or the one that reported ``started``
    node: str | None = None
    config: Any = None
    args: dict | None = None
    #: the request info sent to the worker (when the function asked for it)
    info: dict | None = None
    handle: Handle | None = None
    ref: str | None = None
    #: retries already made (the first attempt is 0)
    retries: int = 0
    #: the node selection's choice for this call (a worker's direct queue), if any
    queue: str | None = None
    started: float = field(default_factory=time.monotonic)
    #: stream chunks sent to the client so far (a stream that sent some is never retried)
    delivered: int = 0
    #: the call's OpenTelemetry span (``GENAPI_OTEL``), ended with its terminal frame
    span: Any = None
    #: held while a frame of this call is queued or an attempt is sent, so no chunk follows
    #: its terminal frame and no attempt starts after it ended (re-entrant: a failed send
    #: settles the call while sending)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


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
        """Register a call before it is dispatched; returns its (new) ref, also set on it."""
        ref = str(next(self._refs))
        pending.ref = ref
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

    def on_nodes(self) -> list[Pending]:
        """Entries whose worker is known (to notice when it dies)."""
        return [p for p in list(self._pending.values()) if p.node is not None]

    def without_deadline(self) -> list[Pending]:
        """Entries no sweeper will ever time out (``timeout: "infinity"``)."""
        return [p for p in list(self._pending.values()) if p.deadline is None]

    def entries(self) -> list[Pending]:
        """Every entry, left in place."""
        return list(self._pending.values())

    def of_connection(self, conn: Any) -> list[Pending]:
        """Every entry of one connection (compared by identity)."""
        return [p for p in list(self._pending.values()) if p.conn is conn]

    def expire(self, now: float) -> list[Pending]:
        """Every entry still pending whose deadline passed (they stay in the table: the
        caller settles them, and may lose the race to a reply that arrives meanwhile)."""
        expired = []
        with self._wake:
            while self._deadlines and self._deadlines[0][0] <= now:
                _, ref = heapq.heappop(self._deadlines)
                pending = self._pending.get(ref)
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

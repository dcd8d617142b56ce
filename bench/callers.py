"""The callers the benchmark compares, of the same style on both sides: threads with blocking
clients.

- :class:`CeleryCaller`: ``apply_async(...).get()`` of an echo task (the floors). The app's
  result backend is per thread, so every calling thread has its own.
- :class:`WsCaller`: a blocking WebSocket client (``websockets.sync.client``) to the
  gateway, one connection per calling thread.

A caller's :meth:`session` is entered by each calling thread (outside the timed window) and
yields ``call(value) -> bool``: one round trip, true when the right value came back.
:func:`sequential` and :func:`concurrent` drive any caller; each returns a phase body
``body(phase, meter)`` that calls ``meter.begin(phase)`` / ``meter.end(phase)`` around the
timed window only.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from websockets.sync.client import connect

from bench.measure import Meter, Phase

CALL_TIMEOUT = 10.0  # seconds; one call slower than this is an error

Call = Callable[[int], bool]
Stamp = tuple[float, float, float, float]  # call starts, midpoint, the function starts, result received


class Caller(Protocol):
    def session(self) -> AbstractContextManager[Call]: ...


class CeleryCaller:
    """``apply_async(kwargs={"value": v}, ...).get()`` of an echo task, from any thread."""

    def __init__(self, echo, stamp, queue: str | None = None) -> None:
        if echo.ignore_result:
            raise RuntimeError(f"{echo.name} ignores its result: the floor would not be a round trip")
        self.echo = echo
        self.stamp = stamp
        self.options = {} if queue is None else {"queue": queue}

    def call(self, value: int) -> bool:
        return self.echo.apply_async(kwargs={"value": value}, **self.options).get(timeout=CALL_TIMEOUT) == value

    @contextmanager
    def session(self) -> Iterator[Call]:
        yield self.call

    def stamped(self, count: int, max_seconds: float) -> list[Stamp]:
        """Sequential calls of the stamp task; midpoint: ``apply_async()`` returned (message published)."""
        out = []
        deadline = time.monotonic() + max_seconds
        for i in range(count):
            if time.monotonic() > deadline:
                break
            sent = time.time()
            result = self.stamp.apply_async(kwargs={"value": i}, **self.options)
            published = time.time()
            reply = result.get(timeout=CALL_TIMEOUT)
            out.append((sent, published, reply["t"], time.time()))
        return out


class WsCaller:
    """Sync calls through the gateway with the blocking ``websockets`` client.

    With ``ping=True`` a call is the gateway's built-in ``gateway.ping``: the WebSocket hop
    without Celery.
    """

    def __init__(self, url: str, service: str, compression: str | None, ping: bool = False) -> None:
        self.url = url
        self.service = service
        self.compression = compression
        self.ping = ping
        self.ids = itertools.count()

    def connect(self):
        return connect(self.url, compression=self.compression, proxy=None, max_size=None, open_timeout=30)

    def request(self, ws, value: int, request_type: str = "echo", service: str | None = None):
        request_id = str(next(self.ids))
        ws.send(json.dumps({"service": service or self.service, "request_type": request_type,
                            "request_id": request_id, "args": {"value": value}}))
        frame = json.loads(ws.recv(timeout=CALL_TIMEOUT))
        if frame.get("request_id") != request_id or not frame.get("success"):
            raise RuntimeError(f"unexpected frame {frame}")
        return frame["result"]

    @contextmanager
    def session(self) -> Iterator[Call]:
        with self.connect() as ws:
            if self.ping:
                yield lambda value: self.request(ws, value, "ping", "gateway") == "pong"
            else:
                yield lambda value: self.request(ws, value) == value

    def stamped(self, count: int, max_seconds: float) -> list[Stamp]:
        """Sequential calls of the stamp function; midpoint: the gateway dispatched the call."""
        out = []
        deadline = time.monotonic() + max_seconds
        with self.connect() as ws:
            for i in range(count):
                if time.monotonic() > deadline:
                    break
                sent = time.time()
                reply = self.request(ws, i, "stamp")
                out.append((sent, reply["dispatched"], reply["t"], time.time()))
        return out


# ---------------------------------------------------------------------------- drivers


def timed(call: Call, value: int, phase: Phase) -> None:
    t0 = time.perf_counter_ns()
    try:
        ok = call(value)
    except Exception:
        ok = False
    phase.record(t0, ok)


def warm_up(call: Call, count: int) -> None:
    for i in range(count):
        if not call(i):
            raise RuntimeError("a warm-up call returned a wrong value")


def sequential(caller: Caller, count: int, warmup: int, max_seconds: float):
    """``count`` calls one after the other from this thread, on one session."""
    def body(phase: Phase, meter: Meter) -> None:
        with caller.session() as call:
            warm_up(call, warmup)
            meter.begin(phase)
            deadline = time.monotonic() + max_seconds
            start = time.perf_counter()
            for i in range(count):
                timed(call, i, phase)
                if time.monotonic() > deadline:
                    break
            phase.elapsed = time.perf_counter() - start
            meter.end(phase)
    return body


def concurrent(caller: Caller, clients: int, count: int, warmup: int, max_seconds: float):
    """``clients`` threads, each with its own session, sharing ``count`` calls, one at a time each.

    The timed window opens when every thread is connected and warm, and closes when the last
    one is done; sessions (connections) close after it.
    """
    def body(phase: Phase, meter: Meter) -> None:
        tickets = itertools.count()
        lock = threading.Lock()
        clock: dict[str, float] = {}
        failures: list[BaseException] = []

        def opened() -> None:  # run once, by the last thread to reach the barrier
            meter.begin(phase)
            clock["deadline"] = time.monotonic() + max_seconds
            clock["start"] = time.perf_counter()

        def closed() -> None:
            clock["elapsed"] = time.perf_counter() - clock["start"]
            meter.end(phase)

        ready = threading.Barrier(clients, action=opened, timeout=120)
        done = threading.Barrier(clients, action=closed, timeout=max_seconds + CALL_TIMEOUT + 60)
        mine = [Phase(phase.name) for _ in range(clients)]

        def run(own: Phase) -> None:
            try:
                with caller.session() as call:
                    warm_up(call, warmup)
                    ready.wait()
                    while True:
                        with lock:
                            ticket = next(tickets)
                        if ticket >= count or time.monotonic() > clock["deadline"]:
                            break
                        timed(call, ticket, own)
                    done.wait()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failures.append(exc)
                ready.abort()
                done.abort()

        threads = [threading.Thread(target=run, args=(own,), name=f"bench-caller-{i}", daemon=True)
                   for i, own in enumerate(mine)]
        for thread in threads:
            thread.start()
        limit = time.monotonic() + 120 + max_seconds + CALL_TIMEOUT + 60
        for thread in threads:
            thread.join(max(0.0, limit - time.monotonic()))
        if any(thread.is_alive() for thread in threads):
            raise RuntimeError(f"{phase.name}: callers did not finish in time")
        if failures:
            first = next((f for f in failures if not isinstance(f, threading.BrokenBarrierError)), failures[0])
            raise RuntimeError(f"{phase.name}: {len(failures)} of {clients} callers failed: {first!r}") from first
        phase.elapsed = clock["elapsed"]
        for own in mine:
            phase.latencies += own.latencies
            phase.errors += own.errors
    return body

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

    def __init__(self, url: str, service: str, compression: str | None, ping: bool = False,
                 request_type: str = "echo", key_space: int | None = None) -> None:
        self.url = url
        self.service = service
        self.compression = compression
        self.ping = ping
        self.request_type = request_type
        self.key_space = key_space  # send ``value % key_space`` (a few keys used again, as user ids are)
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
            elif self.key_space:
                space = self.key_space
                yield lambda value: self.request(ws, value % space, self.request_type) == value % space
            else:
                yield lambda value: self.request(ws, value, self.request_type) == value

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


    def async_call(self, ws, value: int, ack: Phase, final: Phase) -> None:
        """One ``response_type="async"`` call: the ack's latency into ``ack``, the final
        frame's into ``final`` (both from the send). A wrong or missing frame is an error."""
        request_id = str(next(self.ids))
        t0 = time.perf_counter_ns()
        try:
            ws.send(json.dumps({"service": self.service, "request_type": self.request_type,
                                "request_id": request_id, "args": {"value": value}}))
            frame = json.loads(ws.recv(timeout=CALL_TIMEOUT))
            if not (frame.get("request_id") == request_id and frame.get("success") and frame.get("async")
                    and frame.get("result") is None and not frame.get("has_more")):
                raise RuntimeError(f"expected an ack, got {frame}")
            ack.record(t0, True)
            frame = json.loads(ws.recv(timeout=CALL_TIMEOUT))
            if not (frame.get("request_id") == request_id and frame.get("success") and not frame.get("async")
                    and not frame.get("has_more") and frame.get("result") == value):
                raise RuntimeError(f"expected the final frame, got {frame}")
            final.record(t0, True)
        except Exception as exc:  # noqa: BLE001 - counted; the first few are noted
            final.errors += 1
            if len(final.notes) < 3:
                final.notes.append(f"async call {request_id}: {exc!r}"[:300])

    def stream(self, ws, chunks: int, size: int) -> tuple[int, int, float, float, str | None]:
        """One stream of ``chunks`` chunks of ``size`` characters from send to its end frame.

        Returns (chunks received in order, their bytes, seconds until the first chunk, seconds
        until the end frame, the problem or ``None``): the init frame, then every chunk in
        order (its index prefix), then exactly one end frame; anything else is a problem.
        """
        request_id = str(next(self.ids))
        received = nbytes = 0
        first = float("nan")
        start = time.perf_counter()
        try:
            ws.send(json.dumps({"service": self.service, "request_type": self.request_type,
                                "request_id": request_id, "args": {"n": chunks, "size": size}}))
            frame = json.loads(ws.recv(timeout=CALL_TIMEOUT))
            if not (frame.get("request_id") == request_id and frame.get("result") == "init" and frame.get("has_more")):
                return received, nbytes, first, time.perf_counter() - start, f"expected the init frame, got {frame}"
            while True:
                frame = json.loads(ws.recv(timeout=CALL_TIMEOUT))
                if frame.get("request_id") != request_id:
                    return received, nbytes, first, time.perf_counter() - start, f"a frame of another call: {frame}"
                if not frame.get("has_more"):  # the terminal frame
                    elapsed = time.perf_counter() - start
                    if not (frame.get("success") and frame.get("async") and frame.get("result") is None):
                        return received, nbytes, first, elapsed, f"the stream ended with {frame}"
                    if received != chunks:
                        return received, nbytes, first, elapsed, f"{received} chunks of {chunks} before the end frame"
                    return received, nbytes, first, elapsed, None
                chunk = frame.get("result")
                if not (frame.get("success") and isinstance(chunk, str) and len(chunk) == size
                        and chunk[:8] == f"{received:08d}"):
                    shown = chunk[:8] if isinstance(chunk, str) else chunk
                    return (received, nbytes, first, time.perf_counter() - start,
                            f"chunk {received} out of order or wrong: got {shown!r} ({len(str(chunk))} chars)")
                if not received:
                    first = time.perf_counter() - start
                received += 1
                nbytes += size
        except Exception as exc:  # noqa: BLE001 - a timeout, a closed connection
            return received, nbytes, first, time.perf_counter() - start, f"after {received} chunks: {exc!r}"


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


def async_sequential(caller: WsCaller, count: int, warmup: int, max_seconds: float):
    """``count`` async calls one after the other on one connection; ``body(final, meter, ack)``:
    ``final`` gets the costs, both get latencies from the send."""
    def body(final: Phase, meter: Meter, ack: Phase) -> None:
        with caller.connect() as ws:
            scratch = (Phase("warm-up"), Phase("warm-up"))
            for i in range(warmup):
                caller.async_call(ws, i, *scratch)
            if scratch[1].errors:
                raise RuntimeError(f"async warm-up failed: {scratch[1].notes}")
            meter.begin(final)
            deadline = time.monotonic() + max_seconds
            start = time.perf_counter()
            for i in range(count):
                caller.async_call(ws, i, ack, final)
                if time.monotonic() > deadline:
                    break
            final.elapsed = ack.elapsed = time.perf_counter() - start
            meter.end(final)
    return body


def streams(caller: WsCaller, runs: int, chunks: int, size: int, warm_chunks: int):
    """``runs`` streams one after the other on one connection, after one unmeasured stream of
    ``warm_chunks``; ``body(phase, meter)``: one latency per stream (send to end frame),
    ``units`` the chunks received in order, one error per stream with a problem."""
    def body(phase: Phase, meter: Meter) -> None:
        with caller.connect() as ws:
            if warm_chunks:
                *_, problem = caller.stream(ws, warm_chunks, size)
                if problem:
                    raise RuntimeError(f"warm-up stream: {problem}")
            meter.begin(phase)
            for _ in range(runs):
                received, nbytes, first, elapsed, problem = caller.stream(ws, chunks, size)
                phase.units += received
                phase.nbytes += nbytes
                phase.elapsed += elapsed
                phase.firsts.append(first)
                phase.rates.append(received / elapsed if elapsed else float("nan"))
                if problem:
                    phase.errors += 1
                    phase.notes.append(problem[:300])
                    break  # the connection may hold the rest of a broken stream
                phase.latencies.append(int(elapsed * 1e9))
            meter.end(phase)
    return body

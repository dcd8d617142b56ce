#!/usr/bin/env python
"""Sync-call benchmark: the gateway against its floors, in one run, on one machine.

    python bench/bench_sync.py [--requests N] [--clients 50] [--pool prefork] [--concurrency N] [--pin]

One fresh ``redis-server`` (free port, temp dir), one ``genapi worker bench.bench_service``
and one ``genapi gateway`` are started; every process is stopped by PID at the end. Then:

(a) Redis ``PING`` with redis-py, sequential;
(b) plain Celery ``apply_async().get()`` of an echo task (``bench_plain.echo``, results
    through the Redis result backend) on that worker: sequential, then ``--clients``
    threads calling at once;
(c) a sync call of the equivalent GenApi function (``bench.echo``) through the gateway over
    a real WebSocket: sequential on one connection, then ``--clients`` connections each
    sending one request at a time; and, for reference, (c0) the gateway's built-in ``ping``
    (the WebSocket hop alone, no Celery).

It prints p50, p99 and throughput of each, the ratios (c)/(b) against the targets (p50
ratio <= 1.2, throughput ratio >= 1.0), the CPU each process spends per call, the Redis
commands per call, the service queue's length, and where a sequential round trip's time
goes (legs timed with the wall clock the worker returns). Sequential and concurrent phases
of (b) and (c) alternate in ``--rounds`` rounds so drift hits both. ``--pin`` fixes the CPU
placement (see docs/performance.md: on a 2-core VM it decides the solo worker's throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench import bench_service  # noqa: E402
from gateway_app import processes  # noqa: E402
from gateway_app.auth import mint_token  # noqa: E402
from workers.celery_app import create_celery_app  # noqa: E402
from workers.settings import Settings  # noqa: E402

SECRET = "bench-secret-key"
CALL_TIMEOUT = 10.0  # seconds; one call slower than this is an error
TARGET_P50_RATIO = 1.2
TARGET_THROUGHPUT_RATIO = 1.0
DEFAULT_PIN = "redis=0,worker=0,gateway=1,client=1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- measurements


@dataclass
class Phase:
    """One measured phase: latencies (ns) of the calls that succeeded, wall time, costs."""

    name: str
    latencies: list[int] = field(default_factory=list)
    elapsed: float = 0.0
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds per component
    commands: dict[str, int] = field(default_factory=dict)  # Redis calls per command
    redis_usec: int = 0
    queue_depth: list[int] = field(default_factory=list)  # samples of the service queue's length

    def add(self, other: Phase) -> None:
        self.latencies += other.latencies
        self.elapsed += other.elapsed
        self.errors += other.errors
        for key, value in other.cpu.items():
            self.cpu[key] = self.cpu.get(key, 0.0) + value
        for key, value in other.commands.items():
            self.commands[key] = self.commands.get(key, 0) + value
        self.redis_usec += other.redis_usec
        self.queue_depth += other.queue_depth

    def record(self, started_ns: int, ok: bool) -> None:
        """One call that started at ``started_ns`` (perf_counter_ns) ended, well or not."""
        if ok:
            self.latencies.append(time.perf_counter_ns() - started_ns)
        else:
            self.errors += 1

    @property
    def count(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
        return ordered[rank - 1] / 1e6

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else float("nan")


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes of one process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[2]) == pgid:  # field 5: pgrp; fields 14/15: utime/stime
            total += int(rest[11]) + int(rest[12])
    return total / CLK_TCK


def group_tasks(pgid: int) -> list[int]:
    """Thread ids of every live process in a process group."""
    tids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            tids += [int(t) for t in os.listdir(f"/proc/{entry}/task")]
        except OSError:
            continue
    return tids


def pin(tids: list[int], cpu: int) -> None:
    """Keep these threads on one CPU (threads they start later inherit it)."""
    for tid in tids:
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:
            pass  # the thread ended meanwhile


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[float, float]:
    """CPU seconds of the whole machine so far: (processes: user+nice+system, interrupts: irq+softirq)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:8]]
    user, nice, system, _idle, _iowait, irq, softirq = ticks
    return (user + nice + system) / CLK_TCK, (irq + softirq) / CLK_TCK


def machine_busy(seconds: float = 1.0) -> float:
    """How many cores the machine keeps busy (processes + interrupts) over ``seconds``."""
    before, wall = sum(machine_cpu()), time.monotonic()
    time.sleep(seconds)
    return (sum(machine_cpu()) - before) / (time.monotonic() - wall)


class Meter:
    """Around a timed window: CPU per process, Redis command counters, the service queue's
    length (sampled every 20 ms by a thread of its own), and optionally py-spy profiles."""

    def __init__(self, client: redis.Redis, groups: dict[str, int], profiler: Profiler | None = None) -> None:
        self.client = client
        self.groups = groups  # component -> process group id
        self.profiler = profiler
        self._sampler: threading.Thread | None = None
        self._sampling = threading.Event()

    def _snapshot(self) -> tuple[dict[str, float], dict[str, tuple[int, int]]]:
        cpu = {name: group_cpu(pgid) for name, pgid in self.groups.items()}
        cpu["bench client"] = self_cpu()
        # the rest of the machine (processes + interrupts): ~0 unless something else runs
        cpu["other"] = sum(machine_cpu()) - sum(cpu.values())
        stats = {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                 for name, v in self.client.info("commandstats").items()}
        return cpu, stats

    def begin(self, phase: Phase) -> None:
        """Call right before the timed window opens."""
        if self.profiler is not None:
            self.profiler.start(phase.name)
        self._sampling.set()
        self._sampler = threading.Thread(target=self._sample_queue, args=(phase,), daemon=True)
        self._sampler.start()
        self._start = self._snapshot()

    def end(self, phase: Phase) -> None:
        """Call right after the timed window closes: the costs go into ``phase``."""
        cpu1, stats1 = self._snapshot()
        self._sampling.clear()
        self._sampler.join()
        if self.profiler is not None:
            self.profiler.stop()
        cpu0, stats0 = self._start
        phase.cpu = {name: cpu1[name] - cpu0[name] for name in cpu1}
        for name, (calls, usec) in stats1.items():
            before = stats0.get(name, (0, 0))
            calls -= before[0] + (name == "info")  # the INFO of begin() counts in this one
            if calls > 0:
                phase.commands[name] = calls
            phase.redis_usec += usec - before[1]
        phase.commands.pop("llen", None)  # the sampler's own

    def _sample_queue(self, phase: Phase) -> None:
        while self._sampling.is_set():
            phase.queue_depth.append(self.client.llen(bench_service.QUEUE))
            time.sleep(0.02)


class Profiler:
    """py-spy (``record --nonblocking``, collapsed stacks) on each process during each timed window."""

    def __init__(self, py_spy: str, outdir: Path, pids: dict[str, tuple[int, bool]]) -> None:
        self.py_spy = py_spy
        self.outdir = outdir
        self.pids = pids
        self.running: list[subprocess.Popen] = []
        self.seen: dict[str, int] = {}

    def start(self, phase: str) -> None:
        self.seen[phase] = self.seen.get(phase, 0) + 1
        for name, (pid, children) in self.pids.items():
            out = self.outdir / f"{phase}-{self.seen[phase]}-{name.replace(' ', '_')}.txt"
            argv = [self.py_spy, "record", "--nonblocking", "--format", "raw", "--rate", "250",
                    "--pid", str(pid), "--output", str(out)] + (["--subprocesses"] if children else [])
            self.running.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)  # py-spy attaches

    def stop(self) -> None:
        for process in self.running:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for process in self.running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


# ---------------------------------------------------------------------------- the stack


class Stack:
    """redis-server, one worker, one gateway; stopped by PID in :meth:`stop`."""

    def __init__(self, workdir: Path, pool: str, concurrency: int, gateway_workers: int) -> None:
        self.workdir = workdir
        self.worker_options = ["-P", pool] + ([] if pool == "solo" or concurrency is None else ["-c", str(concurrency)])
        self.gateway_workers = gateway_workers
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.redis_port = processes.free_port()
        self.gateway_port = processes.free_port()
        if 6379 in (self.redis_port, self.gateway_port):
            raise SystemExit("bench: refusing to use port 6379 (the machine's own Redis); run again")
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:
            process = processes.spawn(argv, env=env, log=log, cwd=str(ROOT))
        self.started.append((name, process))
        return process

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
        env.update(GENAPI_REDIS_URL=self.redis_url, GENAPI_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        return env

    def start(self) -> None:
        with open(self.workdir / "redis.log", "ab") as log:
            server = processes.start_redis(self.redis_port, self.workdir, log=log)
        self.started.append(("redis", server))
        client = redis.Redis(port=self.redis_port)
        processes.wait_until(lambda: client.ping(), 10, "redis-server", server)
        client.close()
        self.worker = self._spawn("worker", [sys.executable, "-m", "gateway_app", "worker", "bench.bench_service",
                                             *self.worker_options], self.env())
        self.gateway = self._spawn("gateway", [sys.executable, "-m", "gateway_app", "gateway", "--host", "127.0.0.1",
                                               "--port", str(self.gateway_port),
                                               "--workers", str(self.gateway_workers)], self.env())
        deadline = time.monotonic() + 60
        while True:  # the gateway answers and lists the worker as a live node
            for name, process in self.started:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.workdir}/{name}.log")
            try:
                if self.health()["nodes"]:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway did not list the worker within 60 s; see {self.workdir}")
            time.sleep(0.1)

    def health(self) -> dict:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.gateway_port}/healthz", timeout=2) as reply:
            return json.load(reply)

    def groups(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.started}

    def stop(self) -> None:
        for _, process in reversed(self.started):
            processes.stop(process)

    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws?token={mint_token(SECRET, 'bench', ['bench'])}"


# ---------------------------------------------------------------------------- (a) Redis
# Each phase body is ``body(phase, meter)``: it calls ``meter.begin(phase)`` and ``meter.end(phase)``
# around the timed window only (connections and warm-up calls stay outside).


def bench_ping(client: redis.Redis, count: int, max_seconds: float):
    def body(phase: Phase, meter: Meter) -> None:
        meter.begin(phase)
        deadline = time.monotonic() + max_seconds
        start = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter_ns()
            client.ping()
            phase.latencies.append(time.perf_counter_ns() - t0)
            if time.monotonic() > deadline:
                break
        phase.elapsed = time.perf_counter() - start
        meter.end(phase)
    return body


# ---------------------------------------------------------------------------- (b) plain Celery


class CeleryCaller:
    """``apply_async().get()`` of the plain echo task, from any thread (backends are per thread)."""

    def __init__(self, redis_url: str) -> None:
        self.app = create_celery_app(Settings(redis_url=redis_url, broker_url=redis_url), name="bench-client")
        self.echo = self.app.tasks[bench_service.PLAIN_ECHO]
        self.stamp = self.app.tasks[bench_service.PLAIN_STAMP]
        if self.echo.ignore_result:
            raise RuntimeError("the plain echo task ignores its result: the floor would not be a round trip")

    def call(self, value: int) -> bool:
        result = self.echo.apply_async(kwargs={"value": value}, queue=bench_service.QUEUE)
        return result.get(timeout=CALL_TIMEOUT) == value

    def stamped(self, value: int) -> tuple[float, float, float, float]:
        """(call starts, apply_async returned: message published, function starts, result received)."""
        sent = time.time()
        result = self.stamp.apply_async(kwargs={"value": value}, queue=bench_service.QUEUE)
        published = time.time()
        reply = result.get(timeout=CALL_TIMEOUT)
        return sent, published, reply["t"], time.time()

    def close(self) -> None:
        self.app.close()

    def seq(self, count: int, warmup: int, max_seconds: float):
        def body(phase: Phase, meter: Meter) -> None:
            for i in range(warmup):
                self.call(i)
            meter.begin(phase)
            deadline = time.monotonic() + max_seconds
            start = time.perf_counter()
            for i in range(count):
                timed(self.call, i, phase)
                if time.monotonic() > deadline:
                    break
            phase.elapsed = time.perf_counter() - start
            meter.end(phase)
        return body

    def concurrent(self, clients: int, count: int, warmup: int, max_seconds: float):
        def body(phase: Phase, meter: Meter) -> None:
            tickets = itertools.count()
            lock = threading.Lock()
            clock: dict[str, float] = {}

            def go() -> None:  # run once, by the last thread to reach the barrier
                meter.begin(phase)
                clock["deadline"] = time.monotonic() + max_seconds
                clock["start"] = time.perf_counter()

            ready = threading.Barrier(clients, action=go)
            mine = [Phase("") for _ in range(clients)]

            def run(own: Phase) -> None:
                for i in range(warmup):  # also connects this thread's result backend
                    self.call(i)
                ready.wait()
                while True:
                    with lock:
                        ticket = next(tickets)
                    if ticket >= count or time.monotonic() > clock["deadline"]:
                        return
                    timed(self.call, ticket, own)

            threads = [threading.Thread(target=run, args=(own,), daemon=True) for own in mine]
            for thread in threads:
                thread.start()
            limit = time.monotonic() + max_seconds + CALL_TIMEOUT + 60
            for thread in threads:
                thread.join(max(0.0, limit - time.monotonic()))
            if any(thread.is_alive() for thread in threads):
                raise RuntimeError("Celery callers did not finish in time")
            phase.elapsed = time.perf_counter() - clock["start"]
            meter.end(phase)
            for own in mine:
                phase.latencies += own.latencies
                phase.errors += own.errors
        return body


def timed(call: Callable[[int], bool], value: int, phase: Phase) -> None:
    t0 = time.perf_counter_ns()
    try:
        ok = call(value)
    except Exception:
        ok = False
    phase.record(t0, ok)


# ---------------------------------------------------------------------------- (c) the gateway


class WsCaller:
    """Asyncio WebSocket clients on a loop in a background thread; the main thread waits.

    The meter is read from the loop thread (blocking it briefly) outside the timed window.
    """

    def __init__(self, url: str, compression: str | None) -> None:
        self.url = url
        self.compression = compression
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bench-ws", daemon=True)
        self.thread.start()
        self.ids = itertools.count()

    def run(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def connect(self):
        return connect(self.url, compression=self.compression, proxy=None, max_size=None, open_timeout=30)

    async def call(self, ws, value: int, request_type: str = "echo", service: str = bench_service.SERVICE):
        request_id = str(next(self.ids))
        await ws.send(json.dumps({"service": service, "request_type": request_type,
                                  "request_id": request_id, "args": {"value": value}}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), CALL_TIMEOUT))
        if frame.get("request_id") != request_id or not frame.get("success"):
            raise RuntimeError(f"unexpected frame {frame}")
        return frame["result"]

    async def timed(self, ws, value: int, phase: Phase, ping: bool = False) -> None:
        t0 = time.perf_counter_ns()
        try:
            if ping:  # answered by the gateway itself: the WebSocket hop without Celery
                ok = await self.call(ws, value, "ping", "gateway") == "pong"
            else:
                ok = await self.call(ws, value) == value
        except Exception:
            ok = False
        phase.record(t0, ok)

    def seq(self, count: int, warmup: int, max_seconds: float, ping: bool = False):
        async def go(phase: Phase, meter: Meter) -> None:
            async with self.connect() as ws:
                for i in range(warmup):
                    await self.call(ws, i)
                meter.begin(phase)
                deadline = time.monotonic() + max_seconds
                start = time.perf_counter()
                for i in range(count):
                    await self.timed(ws, i, phase, ping)
                    if time.monotonic() > deadline:
                        break
                phase.elapsed = time.perf_counter() - start
                meter.end(phase)

        return lambda phase, meter: self.run(go(phase, meter), max_seconds + CALL_TIMEOUT + 60)

    def concurrent(self, clients: int, count: int, warmup: int, max_seconds: float):
        async def go(phase: Phase, meter: Meter) -> None:
            sockets = []
            try:
                for _ in range(clients):
                    sockets.append(await self.connect())

                async def warm(ws) -> None:
                    for i in range(warmup):
                        await self.call(ws, i)

                await asyncio.gather(*(warm(ws) for ws in sockets))
                tickets = itertools.count()

                async def client(ws) -> None:
                    while (ticket := next(tickets)) < count and time.monotonic() <= deadline:
                        await self.timed(ws, ticket, phase)

                meter.begin(phase)
                deadline = time.monotonic() + max_seconds
                start = time.perf_counter()
                await asyncio.gather(*(client(ws) for ws in sockets))
                phase.elapsed = time.perf_counter() - start
                meter.end(phase)
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)

        return lambda phase, meter: self.run(go(phase, meter), max_seconds + CALL_TIMEOUT + 120)

    def stamped(self, count: int, max_seconds: float) -> list[tuple[float, float, float, float]]:
        """(call starts, the gateway dispatches it, function starts, result received) per call."""
        async def go() -> list[tuple[float, float, float, float]]:
            out = []
            deadline = time.monotonic() + max_seconds
            async with self.connect() as ws:
                for i in range(count):
                    if time.monotonic() > deadline:
                        break
                    sent = time.time()
                    reply = await self.call(ws, i, "stamp")
                    out.append((sent, reply["dispatched"], reply["t"], time.time()))
            return out

        return self.run(go(), max_seconds + CALL_TIMEOUT + 30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


# ---------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def legs(samples: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    """Median ms of each leg and of the round trip, from (start, midpoint, function starts, received)."""
    return (median([(m - s) * 1e3 for s, m, _, _ in samples]), median([(w - m) * 1e3 for _, m, w, _ in samples]),
            median([(r - w) * 1e3 for _, _, w, r in samples]), median([(r - s) * 1e3 for s, _, _, r in samples]))


def code_version() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def print_report(args, stack: Stack, phases: dict[str, Phase], stamps: dict[str, tuple]) -> None:
    ping, b_seq, b_conc, c_seq, c_conc = (phases[k] for k in ("ping", "b_seq", "b_conc", "c_seq", "c_conc"))
    print()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   machine: {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}")
    print(f"code: {code_version()}   machine busy before the run: {args.busy_before:.2f} cores"
          + ("  (NOT IDLE: numbers not comparable)" if args.busy_before > 0.15 else ""))
    print(f"worker: genapi worker bench.bench_service {' '.join(stack.worker_options)} (events on: -E)   "
          f"gateway: gunicorn -k gevent --workers {stack.gateway_workers}   "
          f"ws compression: {args.ws_compression}   rounds: {args.rounds}   "
          f"placement: {'pinned ' + args.pin if args.pin else 'unpinned'}")
    print()
    header = f"{'':52} {'calls':>6} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8}"
    print(header)
    print("-" * len(header))
    rows = [
        ("(a) redis-py PING, sequential", ping),
        ("(c0) gateway built-in ping (WebSocket only), seq.", phases["ws_ping"]),
        ("(b) Celery apply_async().get(), sequential", b_seq),
        (f"(b) Celery apply_async().get(), {args.clients} threads", b_conc),
        ("(c) gateway sync call over WebSocket, sequential", c_seq),
        (f"(c) gateway sync call over WebSocket, {args.clients} clients", c_conc),
    ]
    for label, phase in rows:
        print(f"{label:52} {phase.count:>6} {phase.errors:>4} {phase.percentile(50):>8.3f} "
              f"{phase.percentile(99):>8.3f} {phase.throughput:>8.0f}")
    p50_ratio = c_seq.percentile(50) / b_seq.percentile(50)
    tp_ratio = c_conc.throughput / b_conc.throughput
    print()
    print(f"p50 ratio (c)/(b), sequential:          {p50_ratio:.2f}   target <= {TARGET_P50_RATIO}   "
          f"{'MET' if p50_ratio <= TARGET_P50_RATIO else 'MISSED'}")
    print(f"throughput ratio (c)/(b), {args.clients} clients:    {tp_ratio:.2f}   "
          f"target >= {TARGET_THROUGHPUT_RATIO}   "
          f"{'MET' if tp_ratio >= TARGET_THROUGHPUT_RATIO else 'MISSED'}")

    print()
    components = ["redis", "worker", "gateway", "bench client", "other"]
    names = ["redis", "worker", "gateway", "client", "other"]
    header = (f"{'CPU ms per call':52} " + " ".join(f"{c:>7}" for c in names)
              + f" {'total':>7} {'cores':>6} {'queue':>6}")
    print(header)
    print("-" * len(header))
    for label, phase in rows[1:]:
        per = [phase.cpu.get(c, 0.0) * 1e3 / max(phase.count, 1) for c in components]
        cores = sum(phase.cpu.get(c, 0.0) for c in components) / phase.elapsed if phase.elapsed else float("nan")
        depth = sum(phase.queue_depth) / len(phase.queue_depth) if phase.queue_depth else float("nan")
        print(f"{label:52} " + " ".join(f"{v:>7.3f}" for v in per) + f" {sum(per):>7.3f} {cores:>6.2f} {depth:>6.1f}")
    print(f"(other: the rest of the machine, processes and interrupts — ~0 (+-0.1, accounting noise) unless "
          f"something else runs;\n cores: all of it per second of wall time, of {os.cpu_count()}; "
          f"queue: mean length of {bench_service.QUEUE}, sampled every 20 ms)")

    print()
    print("Redis commands per call (all of Redis in the window; heartbeats and liveness polls add < 0.01):")
    for label, phase in rows[1:]:
        calls = {k: v / max(phase.count, 1) for k, v in phase.commands.items() if v / max(phase.count, 1) >= 0.05}
        total = sum(phase.commands.values()) / max(phase.count, 1)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]))
        print(f"  {label:50} {total:5.1f} (Redis busy {phase.redis_usec / max(phase.count, 1):.0f} us): {shown}")

    if stamps:
        print()
        print("Where a sequential round trip goes (median ms, wall clocks of the same machine):")
        print(f"  {'':28} {'leg 1':>7} {'leg 2':>7} {'leg 3':>7} {'round trip':>11}")
        for label, value in stamps.items():
            print(f"  {label:28} " + " ".join(f"{v:>7.3f}" for v in value[:3]) + f" {value[3]:>11.3f}")
        print("  (b) legs: apply_async() until it returns | until the task starts on the worker | "
              "result back to the caller")
        print("  (c) legs: client send until the gateway dispatches | send_task + until the function starts | "
              "reply back to client")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000,
                        help="calls per measurement of (b) and (c), sequential and concurrent; (a) does 5x "
                             "(default 5000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent callers / connections (default 50)")
    parser.add_argument("--pool", default="prefork", choices=["solo", "threads", "prefork", "gevent", "eventlet"],
                        help="the worker's Celery pool (default prefork, what `genapi worker` runs by default)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="worker concurrency for pools other than solo (default: Celery's, the number of CPUs)")
    parser.add_argument("--gateway-workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate (b) and (c) this many times (default 2)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls before each sequential phase")
    parser.add_argument("--stamps", type=int, default=300, help="calls of the stamp functions (0: skip)")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="time cap of each measured phase")
    parser.add_argument("--ws-compression", choices=["deflate", "none"], default="deflate",
                        help="permessage-deflate on the client (deflate is the default of websockets and browsers)")
    parser.add_argument("--pin", nargs="?", const=DEFAULT_PIN, default=None, metavar="LAYOUT",
                        help="pin each process to one CPU, the same placement for (b) and (c) run after run; "
                             f"LAYOUT names a CPU for redis, worker, gateway and client (this script), default "
                             f"{DEFAULT_PIN}: the served side on one core, the callers on the other")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="record py-spy profiles (collapsed stacks) of each process in each phase into DIR; "
                             "the timings of such a run are perturbed")
    parser.add_argument("--py-spy", default=None, metavar="PATH", help="the py-spy binary (default: on PATH)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1 or args.rounds < 1:
        parser.error("--requests, --clients and --rounds must be positive")
    if args.pin:
        try:
            args.layout = {name: int(cpu) for name, cpu in (item.split("=") for item in args.pin.split(","))}
        except ValueError:
            parser.error(f"--pin: expected a layout like {DEFAULT_PIN}, got {args.pin!r}")
        if set(args.layout) != {"redis", "worker", "gateway", "client"}:
            parser.error("--pin: the layout names a CPU for each of redis, worker, gateway, client")
        if not set(args.layout.values()) <= os.sched_getaffinity(0):
            parser.error(f"--pin: CPUs {sorted(set(args.layout.values()))} are not all available")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="genapi-bench-"))
    stack = Stack(workdir, args.pool, args.concurrency, args.gateway_workers)
    celery_caller = ws_caller = client = None
    failed = True
    try:
        busy = args.busy_before = machine_busy()
        print(f"machine busy before the run: {busy:.2f} of {os.cpu_count()} cores", flush=True)
        if busy > 0.15:
            print("WARNING: something else is using the CPU; the numbers will not be comparable", flush=True)
        started = time.monotonic()
        stack.start()
        print(f"stack up in {time.monotonic() - started:.1f}s: redis :{stack.redis_port}, "
              f"gateway :{stack.gateway_port}, logs in {workdir}", flush=True)
        if args.pin:
            groups = stack.groups()
            for name in ("redis", "worker", "gateway"):
                pin(group_tasks(groups[name]), args.layout[name])
            pin([int(t) for t in os.listdir(f"/proc/{os.getpid()}/task")], args.layout["client"])
        client = redis.Redis(port=stack.redis_port)
        profiler = None
        if args.profile:
            py_spy = args.py_spy or shutil.which("py-spy")
            if not py_spy:
                raise SystemExit("bench: --profile needs py-spy (pip install py-spy, or give --py-spy PATH)")
            args.profile.mkdir(parents=True, exist_ok=True)
            groups = stack.groups()
            profiler = Profiler(py_spy, args.profile, {"gateway": (groups["gateway"], True),
                                                       "worker": (groups["worker"], True),
                                                       "bench client": (os.getpid(), False)})
        meter = Meter(client, stack.groups(), profiler)
        celery_caller = CeleryCaller(stack.redis_url)
        ws_caller = WsCaller(stack.ws_url(), None if args.ws_compression == "none" else args.ws_compression)
        per_round = max(1, args.requests // args.rounds)
        warm = min(args.warmup, args.requests)

        # warm-up: every path end to end (fails loudly if the plain task is not registered)
        for i in range(warm):
            client.ping()
            if not celery_caller.call(i):
                raise RuntimeError("the plain Celery echo returned a wrong value")

        phases = {k: Phase(k) for k in ("ping", "ws_ping", "b_seq", "b_conc", "c_seq", "c_conc")}
        cap = args.max_seconds / args.rounds
        print("(a) redis PING ...", flush=True)
        bench_ping(client, 5 * args.requests, args.max_seconds)(phases["ping"], meter)
        print("gateway built-in ping ...", flush=True)
        ws_caller.seq(args.requests, warm, args.max_seconds, ping=True)(phases["ws_ping"], meter)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: sequential (b), (c) ...", flush=True)
            for key, body in (("b_seq", celery_caller.seq(per_round, warm, cap)),
                              ("c_seq", ws_caller.seq(per_round, warm, cap))):
                phase = Phase(key)
                body(phase, meter)
                phases[key].add(phase)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: {args.clients} concurrent (b), (c) ...", flush=True)
            for key, body in (("b_conc", celery_caller.concurrent(args.clients, per_round, 3, cap)),
                              ("c_conc", ws_caller.concurrent(args.clients, per_round, 3, cap))):
                phase = Phase(key)
                body(phase, meter)
                phases[key].add(phase)

        stamps = {}
        if args.stamps:
            print("stamped calls (request / reply legs) ...", flush=True)
            celery_caller.stamped(0)
            ws_caller.stamped(min(args.stamps, warm), args.max_seconds)  # warm-up
            deadline = time.monotonic() + args.max_seconds
            stamps["(b) plain Celery"] = legs([celery_caller.stamped(i) for i in range(args.stamps)
                                               if time.monotonic() < deadline])
            stamps["(c) gateway over WebSocket"] = legs(ws_caller.stamped(args.stamps, args.max_seconds))
        print_report(args, stack, phases, stamps)
        failed = False
        return 0
    finally:
        if ws_caller is not None:
            ws_caller.close()
        if celery_caller is not None:
            celery_caller.close()
        if client is not None:
            client.close()
        stack.stop()
        if failed or args.keep_logs:
            print(f"process logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

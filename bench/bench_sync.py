#!/usr/bin/env python
"""Sync-call benchmark: the gateway against plain Celery, in one run, on one machine.

    python bench/bench_sync.py [--requests N] [--clients 50] [--pool prefork] [--concurrency N] [--pin]
                               [--no-old-floor] [--no-modes] [--no-policies]

One fresh ``redis-server`` (free port, temp dir) is started, and on it:

- the floor, plain Celery as a user runs it: ``python -m celery -A bench.plain_celery worker
  -P solo``, a minimal app of its own (``bench/plain_celery.py``: JSON, Redis broker and
  result backend on database 1, Celery's defaults otherwise, no task events, no GenApi code);
- ``genapi worker bench.bench_service`` (no task events unless ``--task-events``) and ``genapi gateway`` on
  database 0, its ``/metrics`` scraped every ``--scrape`` seconds;
- a second ``genapi gateway`` (same worker, same Redis) with policies on: ``GENAPI_RATE_LIMITS``
  a global ``user_id`` limit too high to refuse anything in a run (:data:`POLICY_RATE_LIMITS`),
  ``GENAPI_BREAKERS`` unset, i.e. breakers on (the default, as in the first gateway).
  ``--no-policies`` does not start it.

Every process is stopped by PID at the end. The callers are of the same style on both sides:
threads with blocking clients. Then:

(a) Redis ``PING`` with redis-py, sequential;
(b) the floor: ``apply_async().get()`` of ``plain_celery.echo`` (results through the Redis
    result backend): sequential, then ``--clients`` threads calling at once;
(b-old) the former floor, for reference: the same with the plain task ``bench_plain.echo``
    served by the gateway's own worker (events on), which flatters the gateway;
(c) a sync call of the equivalent GenApi function (``bench.echo``) through the gateway over
    a real WebSocket with the blocking ``websockets.sync`` client: sequential on one
    connection, then ``--clients`` threads, each with its own connection and one request at
    a time; and, for reference, (c0) the gateway's built-in ``ping`` (the WebSocket hop
    alone, no Celery);
(p) the same sync call as (c) through the second gateway, the one with the global rate limit
    (one Redis script call per call) and breakers on, measured exactly as (c).

The rows of the response modes and node selection (issue 6; ``--no-modes`` skips them) run
after those, against the same stack:

(s) stream throughput: ``--stream-runs`` streams, one at a time, of ``--stream-chunks``
    chunks of ``--stream-size`` characters (``bench.stream``) on one blocking connection,
    each timed from the request to its end frame; every chunk is checked to arrive in order,
    and the count before the end frame (a wrong one is an error in the table);
(d) an async echo (``bench.echo_async``), sequential on one connection: the time from the
    send to the ack frame, and to the final frame;
(m) the sync echo with each ``choose_node_mode`` (``bench.echo_<mode>``, one function per
    mode), sequential on one connection, ``--mode-requests`` calls each, the modes
    alternating in ``--rounds`` rounds; p50 against the floor's sequential p50 (b).

It prints p50, p99 and throughput of each, the ratios (c)/(b) against the targets (p50
ratio <= 1.2, throughput ratio >= 1.0) and (p)/(b) next to them, the CPU each process spends
per call, the Redis commands per call, the queue's length, and where a sequential round
trip's time goes (legs timed with the wall clock the worker returns). Sequential and
concurrent phases of (b), (b-old), (c) and (p) alternate in ``--rounds`` rounds so drift hits
all. ``--pin`` fixes the CPU placement (see docs/performance.md: on a 2-core VM it decides the
solo worker's throughput).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import bench_service  # noqa: E402
from bench.callers import (  # noqa: E402
    CeleryCaller,
    Stamp,
    WsCaller,
    async_sequential,
    concurrent,
    sequential,
    streams,
)
from bench.common import SECRET, BaseStack, code_version, say, terminated  # noqa: E402
from bench.measure import Meter, Phase, Profiler, group_tasks, machine_busy, pin  # noqa: E402
from gateway_app import processes  # noqa: E402
from gateway_app.auth import mint_token  # noqa: E402
from workers.celery_app import create_celery_app  # noqa: E402
from workers.settings import Settings  # noqa: E402

TARGET_P50_RATIO = 1.2
TARGET_THROUGHPUT_RATIO = 1.0
TARGET_STREAM_RATE = 20000  # chunks/s through one stream of 1 KB chunks (issue 6)
DEFAULT_PIN = "redis=0,worker=0,gateway=1,client=1"
PLAIN_MODULE = "bench.plain_celery"
PLAIN_DB = 1  # the plain Celery app's own Redis database: its keys and queues never meet the gateway's
PLAIN_QUEUE = "celery"  # Celery's default queue
PLAIN_URL_ENV = "BENCH_PLAIN_CELERY_URL"  # read by bench/plain_celery.py: its broker and result backend
MODE_KEY_SPACE = 100  # the selection rows send value % 100: sticky and hash keys are used again, as user ids are
MODE_WARMUP = 100  # warm-up calls of each selection row (>= MODE_KEY_SPACE: every sticky key is placed before)
STREAM_WARM_CHUNKS = 2000  # one unmeasured stream first
POLICY_LIMIT = 100_000_000  # (p): calls per window of the global limit, far more than a run makes
POLICY_RATE_LIMITS = {"global_limits": [{"key": "user_id", "max_requests": POLICY_LIMIT, "window_ms": 60000}]}
# --pin: the layout entry each process follows
PIN_ROLE = {"redis": "redis", "plain worker": "worker", "worker": "worker", "gateway": "gateway",
            "policy gateway": "gateway", "scale gateway": "gateway"}
SCALE_WORKERS = 2  # gunicorn worker processes of the scale-out gateway (row (w2))
#: issue 11's targets: (must, aim) of the ratios against the floor (b)
TARGETS = {"ratio_p50": (1.2, 1.0), "ratio_tput": (1.0, 1.2), "ratio_p50_policies": (1.3, 1.1)}


# ---------------------------------------------------------------------------- the stack


class Stack(BaseStack):
    """redis-server, the plain Celery worker, the genapi worker, one gateway and (``policies``)
    a second gateway with the rate limit of (p); stopped by PID in :meth:`stop`."""

    def __init__(self, workdir: Path, pool: str, concurrency: int, gateway_workers: int,
                 outbound_queue_bytes: int | None = None, policies: bool = False, task_events: bool = False,
                 scale: bool = False) -> None:
        self.outbound_queue_bytes = outbound_queue_bytes
        self.policies = policies
        self.scale = scale
        self.task_events = task_events
        self.extra_gateway_env: dict[str, str] = {}
        self.worker_options = ["-P", pool] + ([] if pool == "solo" or concurrency is None else ["-c", str(concurrency)])
        self.plain_argv = [sys.executable, "-m", "celery", "-A", PLAIN_MODULE, "worker", "-P", "solo",
                           "-l", "warning", "-n", "plain@%h"]
        self.gateway_workers = gateway_workers
        self.gateway_port = processes.free_port()
        self.policy_port = processes.free_port() if policies else None
        self.scale_port = processes.free_port() if scale else None
        super().__init__(workdir, self.gateway_port, self.policy_port, self.scale_port)
        self.plain_url = f"redis://127.0.0.1:{self.redis_port}/{PLAIN_DB}"

    def plain_env(self) -> dict:
        """What a user's shell would have: the broker URL, no GenApi settings (cwd is the project)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
        env[PLAIN_URL_ENV] = self.plain_url
        return env

    def start(self) -> None:
        self.start_redis()
        self.plain_worker = self.spawn("plain worker", self.plain_argv, self.plain_env())
        worker_env = self.env() | ({"GENAPI_TASK_EVENTS": "1"} if self.task_events else {})
        self.worker = self.spawn("worker", [sys.executable, "-m", "gateway_app", "worker", "bench.bench_service",
                                             *self.worker_options], worker_env)
        self.gateway = self._spawn_gateway("gateway", self.gateway_port, self.gateway_env())
        if self.policies:
            self.policy_gateway = self._spawn_gateway("policy gateway", self.policy_port, self.policy_env())
        if self.scale:  # (w2): the first gateway's settings, SCALE_WORKERS processes
            self.scale_gateway = self.spawn("scale gateway", self.gateway_argv(self.scale_port, SCALE_WORKERS),
                                            self.gateway_env())
        # the bench's own client of the plain app: the same module, the same URL from the environment
        os.environ[PLAIN_URL_ENV] = self.plain_url
        self.plain = importlib.import_module(PLAIN_MODULE)
        self.wait_serving(self.ws_url(), "the gateway")
        if self.policies:
            self.wait_serving(self.policy_ws_url(), "the policy gateway")
        if self.scale:
            self.wait_serving(self.ws_url(self.scale_port), "the scale-out gateway")
        processes.wait_until(lambda: self.plain.app.control.ping(timeout=0.5), 60, "the plain Celery worker",
                             self.plain_worker)

    def gateway_env(self) -> dict:
        """The first gateway's: GENAPI_BREAKERS unset (breakers on, the default), no rate limits
        (plus ``--gateway-env``)."""
        env = self.env() | self.extra_gateway_env
        if self.outbound_queue_bytes is not None:  # else the product's default
            env["GENAPI_OUTBOUND_QUEUE_BYTES"] = str(self.outbound_queue_bytes)
        return env

    def policy_env(self) -> dict:
        """The policy gateway's: the first gateway's plus the global rate limit of (p)."""
        return self.gateway_env() | {"GENAPI_RATE_LIMITS": json.dumps(POLICY_RATE_LIMITS)}

    def _spawn_gateway(self, name: str, port: int, env: dict) -> subprocess.Popen:
        return self.spawn(name, self.gateway_argv(port, self.gateway_workers), env)

    def wait_serving(self, url: str, what: str) -> None:
        """Until a real echo call through the gateway at ``url`` comes back from the worker."""
        deadline = time.monotonic() + 60
        while not self.gateway_serves(url):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no echo call through {what} succeeded within 60 s; see {self.workdir}")
            time.sleep(0.2)

    def gateway_serves(self, url: str) -> bool:
        try:
            with WsCaller(url, bench_service.SERVICE, None).session() as call:
                return call(1)
        except Exception:
            return False

    def ws_url(self, port: int | None = None) -> str:
        """The first gateway's WebSocket URL (or the one on ``port``); the token's user id is ``bench``."""
        return f"ws://127.0.0.1:{port or self.gateway_port}/ws?token={mint_token(SECRET, 'bench', ['bench'])}"

    def policy_ws_url(self) -> str:
        return self.ws_url(self.policy_port)


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


# ---------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def legs(samples: list[Stamp]) -> tuple[float, float, float, float]:
    """Median ms of each leg and of the round trip, from (start, midpoint, function starts, received)."""
    return (median([(m - s) * 1e3 for s, m, _, _ in samples]), median([(w - m) * 1e3 for _, m, w, _ in samples]),
            median([(r - w) * 1e3 for _, _, w, r in samples]), median([(r - s) * 1e3 for s, _, _, r in samples]))


class Scraper:
    """Scrapes the gateways' ``/metrics`` every ``interval`` seconds on a thread (metrics on, as in production)."""

    def __init__(self, ports: list[int], interval: float) -> None:
        self.urls = [f"http://127.0.0.1:{port}/metrics" for port in ports]
        self.interval = interval
        self.scrapes = self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-scraper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for url in self.urls:
                try:
                    with urllib.request.urlopen(url, timeout=5) as reply:
                        reply.read()
                    self.scrapes += 1
                except OSError:
                    self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def print_report(args, stack: Stack, phases: dict[str, Phase], stamps: dict[str, tuple]) -> None:
    b_seq, b_conc, c_seq, c_conc = (phases[k] for k in ("b_seq", "b_conc", "c_seq", "c_conc"))
    n = args.clients
    print()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   machine: {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}")
    print(f"code: {code_version()} in {ROOT}   machine busy before the run: {args.busy_before:.2f} cores"
          + ("  (NOT IDLE: numbers not comparable)" if args.busy_before > 0.15 else ""))
    scraper = getattr(args, "scraper", None)
    if scraper is not None:
        print(f"metrics: /metrics scraped every {scraper.interval:g} s during the run "
              f"({scraper.scrapes} scrapes, {scraper.failures} failed)")
    else:
        print("metrics: not scraped (--scrape 0)")
    print(f"floor (b): {' '.join(['python'] + stack.plain_argv[1:])}   "
          f"(own app, Redis db {PLAIN_DB}, JSON, no task events)")
    events = "task events on: GENAPI_TASK_EVENTS=1" if stack.task_events else "no task events (the default)"
    print(f"gateway's worker: genapi worker bench.bench_service {' '.join(stack.worker_options)} ({events})   "
          f"gateway: gunicorn -k gevent --workers {stack.gateway_workers}"
          + "".join(f", {name}={value}" for name, value in stack.extra_gateway_env.items())
          + (f", GENAPI_OUTBOUND_QUEUE_BYTES={stack.outbound_queue_bytes}"
             if stack.outbound_queue_bytes is not None else "")
          + ", GENAPI_BREAKERS unset (breakers on, the default), no rate limits")
    if stack.policies:
        print(f"policy gateway (p): the same, a second process, plus "
              f"GENAPI_RATE_LIMITS='{json.dumps(POLICY_RATE_LIMITS)}' (never refuses in a run); "
              f"GENAPI_BREAKERS unset: breakers on")
    print(f"callers: threads with blocking clients (Celery: apply_async().get(); gateway: websockets.sync, "
          f"ws compression {args.ws_compression})   rounds: {args.rounds}   "
          f"placement: {'pinned ' + args.pin if args.pin else 'unpinned'}")
    print()
    width = 58
    header = f"{'':{width}} {'calls':>6} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8}"
    print(header)
    print("-" * len(header))
    rows = [
        ("(a) redis-py PING, sequential", "ping"),
        ("(c0) gateway built-in ping (WebSocket only), sequential", "ws_ping"),
        ("(b) FLOOR plain Celery (own app, solo), sequential", "b_seq"),
        (f"(b) FLOOR plain Celery (own app, solo), {n} threads", "b_conc"),
        ("(b-old) old floor: task on genapi worker (-E), seq.", "old_seq"),
        (f"(b-old) old floor: task on genapi worker (-E), {n} thr.", "old_conc"),
        ("(c) gateway sync call over WebSocket, sequential", "c_seq"),
        (f"(c) gateway sync call over WebSocket, {n} clients", "c_conc"),
        ("(p) gateway + global rate limit + breakers on, seq.", "p_seq"),
        (f"(p) gateway + global rate limit + breakers on, {n} cl.", "p_conc"),
    ]
    m = args.scale_clients
    rows += [(f"(b) FLOOR plain Celery (own app, solo), {m} threads", "b_scale"),
             (f"(w1) gateway --workers 1, {m} clients", "w1_scale"),
             (f"(w2) gateway --workers {SCALE_WORKERS}, {m} clients", "w2_scale")]
    rows += [("(d) async echo: send -> ack frame, sequential", "async_ack"),
             ("(d) async echo: send -> final frame, sequential", "async_final")]
    rows += [(f"(m) sync echo, choose_node_mode {label}, seq.", f"m_{request_type}")
             for label, (request_type, _) in bench_service.MODES.items()]
    rows = [(label, phases[key]) for label, key in rows if key in phases]
    for label, phase in rows:
        print(f"{label:{width}} {phase.count:>6} {phase.errors:>4} {phase.percentile(50):>8.3f} "
              f"{phase.percentile(99):>8.3f} {phase.throughput:>8.0f}")
    p50_ratio = c_seq.percentile(50) / b_seq.percentile(50)
    tp_ratio = c_conc.throughput / b_conc.throughput
    print()
    print(f"p50 ratio (c)/(b), sequential:          {p50_ratio:.2f}   target <= {TARGET_P50_RATIO}   "
          f"{'MET' if p50_ratio <= TARGET_P50_RATIO else 'MISSED'}")
    print(f"throughput ratio (c)/(b), {n} clients:    {tp_ratio:.2f}   "
          f"target >= {TARGET_THROUGHPUT_RATIO}   "
          f"{'MET' if tp_ratio >= TARGET_THROUGHPUT_RATIO else 'MISSED'}")
    if "old_seq" in phases:
        print(f"(for reference, against the old floor (b-old): p50 ratio "
              f"{c_seq.percentile(50) / phases['old_seq'].percentile(50):.2f}, throughput ratio "
              f"{c_conc.throughput / phases['old_conc'].throughput:.2f})")
    if "p_seq" in phases:
        print_policies(args, phases)
    print_targets(args, phases)
    print_modes(args, phases, b_seq)

    print()
    components = ["redis", "plain worker", "worker", "gateway", "bench client", "other"]
    names = ["redis", "plain-w", "genapi-w", "gateway", "client", "other"]
    header = (f"{'CPU ms per call':{width}} " + " ".join(f"{c:>8}" for c in names)
              + f" {'total':>7} {'cores':>6} {'queue':>6}")
    print(header)
    print("-" * len(header))
    costs = rows[1:] + ([("(s) stream, per CHUNK", phases["stream"])] if "stream" in phases else [])
    costs = [(label, phase) for label, phase in costs if phase.name != "async_ack"]  # its costs are the final's
    for label, phase in costs:
        per = [cpu_of(phase, c) * 1e3 / max(phase.per, 1) for c in components]
        cores = sum(cpu_of(phase, c) for c in components) / phase.elapsed if phase.elapsed else float("nan")
        depth = sum(phase.queue_depth) / len(phase.queue_depth) if phase.queue_depth else float("nan")
        print(f"{label:{width}} " + " ".join(f"{v:>8.3f}" for v in per)
              + f" {sum(per):>7.3f} {cores:>6.2f} {depth:>6.1f}")
    print(f"(plain-w: the plain Celery worker, serves (b); genapi-w: genapi worker, serves (b-old), (c) and (p);\n"
          f" gateway: both gateway processes, (c)'s and (p)'s (the one not called idles: ~0);\n"
          f" other: the rest of the machine, processes and interrupts — ~0 (+-0.1, accounting noise) unless "
          f"something else runs;\n cores: all of it per second of wall time, of {os.cpu_count()}; "
          f"queue: mean length of the queue the calls go through, sampled every 20 ms:\n "
          f"{PLAIN_QUEUE} in db {PLAIN_DB} for (b), {bench_service.QUEUE} in db 0 for (b-old), (c), (p), (d), (s) and "
          f"(m) any;\n not sampled (nan) for the other modes (m), whose tasks go to the worker's direct queue)")

    print()
    print("Redis commands per call (all of Redis in the window; heartbeats and liveness polls add < 0.01):")
    for label, phase in costs:
        calls = {k: v / max(phase.per, 1) for k, v in phase.commands.items() if v / max(phase.per, 1) >= 0.05}
        total = sum(phase.commands.values()) / max(phase.per, 1)
        shown = ", ".join(f"{k} {v:.1f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]))
        print(f"  {label:{width}} {total:5.1f} (Redis busy {phase.redis_usec / max(phase.per, 1):.0f} us): {shown}")

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


def cpu_of(phase: Phase, component: str) -> float:
    """CPU seconds of one column of the cost table; ``gateway`` is every gateway process."""
    if component == "gateway":
        return sum(phase.cpu.get(name, 0.0) for name in ("gateway", "policy gateway", "scale gateway"))
    return phase.cpu.get(component, 0.0)


def print_policies(args, phases: dict[str, Phase]) -> None:
    """(p) next to (c): ratio_p50 (sequential p50) and ratio_tput (calls/s with ``--clients``)
    against the floor (b), and the rate limit's script calls per call (none means not applied)."""
    b_seq, b_conc = phases["b_seq"], phases["b_conc"]
    print()
    print(f"{'against the floor (b)':52} {'ratio_p50':>9} {'ratio_tput':>10}   (p50 sequential; calls/s, "
          f"{args.clients} clients)")
    for label, key in (("(c) gateway (breakers on, no rate limit)", "c"),
                       ("(p) gateway + global rate limit + breakers on", "p")):
        print(f"{label:52} {phases[f'{key}_seq'].percentile(50) / b_seq.percentile(50):>9.2f} "
              f"{phases[f'{key}_conc'].throughput / b_conc.throughput:>10.2f}")
    print(f"{'(p) against (c)':52} {phases['p_seq'].percentile(50) / phases['c_seq'].percentile(50):>9.2f} "
          f"{phases['p_conc'].throughput / phases['c_conc'].throughput:>10.2f}")
    scripts = ", ".join(f"({k[0]}) {k[2:]} {phases[k].commands.get('evalsha', 0) / max(phases[k].count, 1):.2f}"
                        for k in ("c_seq", "c_conc", "p_seq", "p_conc"))
    print(f"Redis script calls (EVALSHA) per call: {scripts}   (expected: 0 in (c), 1 in (p), the limit's)")


def print_targets(args, phases: dict[str, Phase]) -> None:
    """Issue 11's sync targets, each with its must and aim, and the scale-out rows' ratios."""
    values = ratios(phases)
    print()
    print(f"{'issue 11 target':44} {'value':>7} {'must':>8} {'aim':>8}")
    labels = {"ratio_p50": "ratio_p50, defaults (p50 (c) / (b), seq.)",
              "ratio_tput": f"ratio_tput, defaults ((c) / (b), {args.clients} clients)",
              "ratio_p50_policies": "ratio_p50, rate limit + breakers ((p) / (b))"}
    for key, label in labels.items():
        if key not in values:
            continue
        must, aim = TARGETS[key]
        met = (lambda v, t: v <= t) if key.startswith("ratio_p50") else (lambda v, t: v >= t)
        sign = "<=" if key.startswith("ratio_p50") else ">="
        print(f"{label:44} {values[key]:>7.2f} {sign} {must:<4} {'MET' if met(values[key], must) else 'MISSED':6} "
              f"{sign} {aim:<4} {'MET' if met(values[key], aim) else 'MISSED'}")
    if "w1_scale" in phases:
        print(f"scale-out, {args.scale_clients} clients: (w1) / (b) {values['scale_w1_over_b']:.2f}, "
              f"(w2) / (b) {values['scale_w2_over_b']:.2f}, (w2) / (w1) {values['scale_w2_over_w1']:.2f}")


def print_modes(args, phases: dict[str, Phase], b_seq: Phase) -> None:
    """The stream's throughput, and each selection mode's p50 against the floor (b)."""
    stream = phases.get("stream")
    if stream is not None:
        print()
        print(f"(s) stream: {args.stream_runs} stream(s) of {args.stream_chunks} chunks of {args.stream_size} "
              f"characters, one at a time on one connection, each timed from the request to its end frame")
        rates = ", ".join(f"{r:.0f}" for r in stream.rates)
        firsts = ", ".join(f"{f * 1e3:.1f}" for f in stream.firsts)
        mb = stream.nbytes / stream.elapsed / 1e6 if stream.elapsed else float("nan")
        print(f"    chunks in order {stream.units} of {args.stream_runs * args.stream_chunks}, streams with errors "
              f"{stream.errors}; overall {stream.throughput:.0f} chunks/s, {mb:.1f} MB/s of chunk payload "
              f"(target >= {TARGET_STREAM_RATE} chunks/s: "
              f"{'MET' if stream.throughput >= TARGET_STREAM_RATE and not stream.errors else 'MISSED'})")
        print(f"    chunks/s per stream: {rates}   first chunk after (ms): {firsts}")
        for note in stream.notes:
            print(f"    ERROR: {note}")
    for key in ("async_final",):
        for note in phases[key].notes if key in phases else ():
            print(f"    (d) ERROR: {note}")
    modes = [(label, phases[f"m_{request_type}"]) for label, (request_type, _) in bench_service.MODES.items()
             if f"m_{request_type}" in phases]
    if modes:
        floor = b_seq.percentile(50)
        any_p50 = phases["m_echo_any"].percentile(50) if "m_echo_any" in phases else float("nan")
        print()
        print(f"(m) selection modes, sync echo, sequential: p50 against the floor's sequential p50 (b) "
              f"{floor:.3f} ms, and against (m) any")
        print(f"    {'choose_node_mode':22} {'calls':>6} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'/(b) p50':>9} {'/any p50':>9}")
        for label, phase in modes:
            print(f"    {label:22} {phase.count:>6} {phase.errors:>4} {phase.percentile(50):>8.3f} "
                  f"{phase.percentile(99):>8.3f} {phase.percentile(50) / floor:>9.2f} "
                  f"{phase.percentile(50) / any_p50:>9.2f}")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000,
                        help="sequential calls of each of (b), (b-old), (c) and (p), after --warmup ones; "
                             "(a) does 5x (default 2000)")
    parser.add_argument("--conc-requests", type=int, default=6000,
                        help="calls shared by the concurrent callers of each concurrent row (default 6000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent callers / connections (default 50)")
    parser.add_argument("--scale-clients", type=int, default=200,
                        help="callers of the scale-out rows (b) / (w1) / (w2) (default 200)")
    parser.add_argument("--no-scale", dest="scale", action="store_false",
                        help=f"skip the scale-out rows: no third gateway (genapi gateway --workers {SCALE_WORKERS})")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write every row and the ratios as JSON to PATH (read by bench/bench_all.py)")
    parser.add_argument("--pool", default="prefork", choices=["solo", "threads", "prefork", "gevent", "eventlet"],
                        help="the genapi worker's Celery pool (default prefork, what `genapi worker` runs by "
                             "default); the floor's plain worker is always -P solo")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="genapi worker concurrency for pools other than solo (default: Celery's, the number "
                             "of CPUs)")
    parser.add_argument("--gateway-workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternate (b), (b-old), (c) and (p) this many "
                                                              "times (default 2)")
    parser.add_argument("--no-old-floor", dest="old_floor", action="store_false",
                        help="skip (b-old), the plain task on the genapi worker")
    parser.add_argument("--no-policies", dest="policies", action="store_false",
                        help="skip (p): do not start the second gateway, the one with a global rate limit "
                             "(GENAPI_RATE_LIMITS) and breakers on")
    parser.add_argument("--no-modes", dest="modes", action="store_false",
                        help="skip the rows of the response modes and node selection: (s) stream, (d) async, "
                             "(m) each choose_node_mode")
    parser.add_argument("--mode-requests", type=int, default=1000,
                        help="calls of (d) async and of each selection mode's row (m) (default 1000)")
    parser.add_argument("--stream-chunks", type=int, default=20000, help="chunks per stream of (s) (default 20000)")
    parser.add_argument("--stream-size", type=int, default=1024,
                        help="characters per chunk of (s), at least 8 (default 1024)")
    parser.add_argument("--stream-runs", type=int, default=3, help="measured streams of (s) (default 3)")
    parser.add_argument("--outbound-queue-bytes", type=int, default=None, metavar="N",
                        help="GENAPI_OUTBOUND_QUEUE_BYTES for the gateway: the bytes of frames one connection may "
                             "have waiting before a stream is ended as 'Client too slow' (default: the product's, "
                             "8 MiB)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls before each sequential phase")
    parser.add_argument("--stamps", type=int, default=300, help="calls of the stamp functions (0: skip)")
    parser.add_argument("--max-seconds", type=float, default=40.0, help="time cap of each measured phase")
    parser.add_argument("--ws-compression", choices=["deflate", "none"], default="deflate",
                        help="permessage-deflate offered by the client (deflate is the default of websockets and "
                             "browsers; the gateway declines it unless configured)")
    parser.add_argument("--pin", nargs="?", const=DEFAULT_PIN, default=None, metavar="LAYOUT",
                        help="pin each process to one CPU, the same placement for (b) and (c) run after run; "
                             f"LAYOUT names a CPU for redis, worker (both workers), gateway and client (this "
                             f"script), default {DEFAULT_PIN}: the served side on one core, the callers on the other")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="record py-spy profiles (collapsed stacks) of each process in each phase into DIR; "
                             "the timings of such a run are perturbed")
    parser.add_argument("--py-spy", default=None, metavar="PATH", help="the py-spy binary (default: on PATH)")
    parser.add_argument("--task-events", action="store_true",
                        help="the gateway's worker sends Celery task events (GENAPI_TASK_EVENTS=1), as with Flower")
    parser.add_argument("--scrape", type=float, default=5.0, metavar="SECONDS",
                        help="GET each gateway's /metrics this often during the run, as Prometheus would "
                             "(default 5; 0: never)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the gateways (repeatable), e.g. GENAPI_METRICS=off")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1 or args.rounds < 1:
        parser.error("--requests, --clients and --rounds must be positive")
    if args.mode_requests < 1 or args.stream_chunks < 1 or args.stream_runs < 1 or args.stream_size < 8:
        parser.error("--mode-requests, --stream-chunks and --stream-runs must be positive, --stream-size >= 8")
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


def run_scale(args, stack: Stack, phases: dict[str, Phase], meter: Meter, callers: dict) -> None:
    """The scale-out rows, ``--scale-clients`` callers each: the floor (b), the first gateway
    (one gunicorn process, (w1)) and the scale-out gateway (``--workers 2``, (w2)), alternating
    in ``--rounds`` rounds."""
    per_round = max(1, args.conc_requests // args.rounds)
    for key in callers:
        phases[f"{key}_scale"] = Phase(f"{key}_scale")
    for r in range(args.rounds):
        say(f"round {r + 1}/{args.rounds}: {args.scale_clients} concurrent (b), (w1) gateway --workers 1, "
            f"(w2) gateway --workers {SCALE_WORKERS} ...")
        for key, caller in callers.items():
            phase = Phase(f"{key}_scale")
            concurrent(caller, args.scale_clients, per_round, 3, args.max_seconds / args.rounds)(phase, meter)
            phases[f"{key}_scale"].add(phase)
        stack.check_alive()


def ratios(phases: dict[str, Phase]) -> dict[str, float]:
    """Issue 11's ratios against the floor (b): p50 sequential, calls/s with the concurrent callers."""
    b_seq, b_conc = phases["b_seq"].percentile(50), phases["b_conc"].throughput
    result = {"ratio_p50": phases["c_seq"].percentile(50) / b_seq,
              "ratio_tput": phases["c_conc"].throughput / b_conc}
    if "p_seq" in phases:
        result["ratio_p50_policies"] = phases["p_seq"].percentile(50) / b_seq
        result["ratio_tput_policies"] = phases["p_conc"].throughput / b_conc
    if "w1_scale" in phases:
        result["scale_w1_over_b"] = phases["w1_scale"].throughput / phases["b_scale"].throughput
        result["scale_w2_over_b"] = phases["w2_scale"].throughput / phases["b_scale"].throughput
        result["scale_w2_over_w1"] = phases["w2_scale"].throughput / phases["w1_scale"].throughput
    return result


def write_json(args, stack: Stack, phases: dict[str, Phase], stamps: dict[str, tuple]) -> None:
    """Every row (count, errors, p50/p90/p99 ms, calls/s, CPU ms per call per process), the
    ratios and the stream's chunks/s, for bench/bench_all.py's table and plot."""
    rows = {}
    for key, phase in phases.items():
        rows[key] = {"count": phase.count, "errors": phase.errors, "p50_ms": phase.percentile(50),
                     "p90_ms": phase.percentile(90), "p99_ms": phase.percentile(99),
                     "calls_per_s": phase.throughput,
                     "cpu_ms_per_call": {name: cpu * 1e3 / max(phase.per, 1) for name, cpu in phase.cpu.items()}}
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "code": code_version(),
              "busy_before": args.busy_before, "clients": args.clients, "scale_clients": args.scale_clients,
              "requests": args.requests, "conc_requests": args.conc_requests, "rows": rows,
              "ratios": ratios(phases), "legs_ms": stamps}
    stream = phases.get("stream")
    if stream is not None:
        result["stream"] = {"chunks_per_s": stream.throughput, "errors": stream.errors,
                            "per_stream": list(stream.rates), "chunks": stream.units,
                            "expected": args.stream_runs * args.stream_chunks}
    args.json.write_text(json.dumps(result, indent=2, default=float))


def run_modes(args, stack: Stack, phases: dict[str, Phase], meter: Meter, compression: str | None) -> None:
    """The rows of issue 6, after the others: (s) stream, (d) async, (m) each selection mode."""
    def caller(request_type: str, key_space: int | None = None) -> WsCaller:
        return WsCaller(stack.ws_url(), bench_service.SERVICE, compression, request_type=request_type,
                        key_space=key_space)

    say(f"(s) stream: {args.stream_runs} x {args.stream_chunks} chunks of {args.stream_size} ...")
    phases["stream"] = Phase("stream")
    streams(caller("stream"), args.stream_runs, args.stream_chunks, args.stream_size,
            min(STREAM_WARM_CHUNKS, args.stream_chunks))(phases["stream"], meter)
    stack.check_alive()
    say("(d) async echo, sequential ...")
    phases["async_ack"], phases["async_final"] = Phase("async_ack"), Phase("async_final")
    async_sequential(caller("echo_async"), args.mode_requests, MODE_WARMUP, args.max_seconds)(
        phases["async_final"], meter, phases["async_ack"])
    stack.check_alive()
    per_round = max(1, args.mode_requests // args.rounds)
    for request_type, _ in bench_service.MODES.values():
        phases[f"m_{request_type}"] = Phase(f"m_{request_type}")
    for r in range(args.rounds):
        say(f"round {r + 1}/{args.rounds}: (m) sync echo with each choose_node_mode, sequential ...")
        for request_type, _ in bench_service.MODES.values():
            phase = Phase(f"m_{request_type}")
            sequential(caller(request_type, MODE_KEY_SPACE), per_round, MODE_WARMUP,
                       args.max_seconds / args.rounds)(phase, meter)
            phases[f"m_{request_type}"].add(phase)
        stack.check_alive()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix="genapi-bench-"))
    stack = Stack(workdir, args.pool, args.concurrency, args.gateway_workers, args.outbound_queue_bytes,
                  args.policies, args.task_events, args.scale)
    stack.extra_gateway_env = dict(item.split("=", 1) for item in args.gateway_env)
    scraper = None
    client = plain_client = old_app = profiler = None
    failed = True
    try:
        busy = args.busy_before = machine_busy()
        print(f"machine busy before the run: {busy:.2f} of {os.cpu_count()} cores", flush=True)
        if busy > 0.15:
            print("WARNING: something else is using the CPU; the numbers will not be comparable", flush=True)
        started = time.monotonic()
        stack.start()
        print(f"stack up in {time.monotonic() - started:.1f}s: redis :{stack.redis_port}, "
              f"gateway :{stack.gateway_port}"
              + (f", policy gateway :{stack.policy_port}" if args.policies else "")
              + f", logs in {workdir}", flush=True)
        groups = stack.groups()
        if args.pin:
            for name, pgid in groups.items():  # the policy gateway shares the gateway's CPU
                pin(group_tasks(pgid), args.layout[PIN_ROLE[name]])
            pin([int(t) for t in os.listdir(f"/proc/{os.getpid()}/task")], args.layout["client"])
        client = redis.Redis(port=stack.redis_port)
        plain_client = redis.Redis(port=stack.redis_port, db=PLAIN_DB)
        if args.scrape:
            ports = [stack.gateway_port] + ([stack.policy_port] if args.policies else [])
            scraper = Scraper(ports, args.scrape)
            args.scraper = scraper
        if args.profile:
            py_spy = args.py_spy or shutil.which("py-spy")
            if not py_spy:
                raise SystemExit("bench: --profile needs py-spy (pip install py-spy, or give --py-spy PATH)")
            args.profile.mkdir(parents=True, exist_ok=True)
            profiler = Profiler(py_spy, args.profile, {"gateway": (groups["gateway"], True),
                                                       "worker": (groups["worker"], True),
                                                       "plain worker": (groups["plain worker"], False),
                                                       "bench client": (os.getpid(), False)}
                                | ({"policy gateway": (groups["policy gateway"], True)} if args.policies else {}))
        service_queue = (client, bench_service.QUEUE)
        queues = {"b_seq": (plain_client, PLAIN_QUEUE), "b_conc": (plain_client, PLAIN_QUEUE),
                  "old_seq": service_queue, "old_conc": service_queue, "c_seq": service_queue,
                  "c_conc": service_queue, "p_seq": service_queue, "p_conc": service_queue,
                  "b_scale": (plain_client, PLAIN_QUEUE), "w1_scale": service_queue, "w2_scale": service_queue,
                  "stream": service_queue, "async_final": service_queue, "m_echo_any": service_queue}
        meter = Meter(client, groups, queues, profiler)

        floor = CeleryCaller(stack.plain.echo, stack.plain.stamp)  # Celery's default queue, as a user sends
        old_app = create_celery_app(Settings(redis_url=stack.redis_url, broker_url=stack.redis_url),
                                    name="bench-client")
        old_floor = CeleryCaller(old_app.tasks[bench_service.PLAIN_ECHO], old_app.tasks[bench_service.PLAIN_STAMP],
                                 queue=bench_service.QUEUE)
        compression = None if args.ws_compression == "none" else args.ws_compression
        gateway = WsCaller(stack.ws_url(), bench_service.SERVICE, compression)
        gateway_ping = WsCaller(stack.ws_url(), bench_service.SERVICE, compression, ping=True)
        callers = {"b": floor, "c": gateway} | ({"old": old_floor} if args.old_floor else {})
        if args.policies:  # (p): the same calls as (c), through the gateway with the rate limit
            callers["p"] = WsCaller(stack.policy_ws_url(), bench_service.SERVICE, compression)
        order = [c for c in ("b", "old", "c", "p") if c in callers]
        per_round = max(1, args.requests // args.rounds)
        conc_per_round = max(1, args.conc_requests // args.rounds)
        warm = min(args.warmup, args.requests)
        cap = args.max_seconds / args.rounds

        phases = {k: Phase(k) for k in ["ping", "ws_ping"] + [f"{c}_{m}" for c in order for m in ("seq", "conc")]}
        for _ in range(warm):
            client.ping()
        say("(a) redis PING ...")
        bench_ping(client, 5 * args.requests, args.max_seconds)(phases["ping"], meter)
        say("(c0) gateway built-in ping ...")
        sequential(gateway_ping, args.requests, warm, args.max_seconds)(phases["ws_ping"], meter)
        for mode in ("seq", "conc"):
            for r in range(args.rounds):
                what = "sequential" if mode == "seq" else f"{args.clients} concurrent"
                say(f"round {r + 1}/{args.rounds}: {what} {', '.join(f'({c})' for c in order)} ...")
                for c in order:
                    key = f"{c}_{mode}"
                    body = (sequential(callers[c], per_round, warm, cap) if mode == "seq"
                            else concurrent(callers[c], args.clients, conc_per_round, 3, cap))
                    phase = Phase(key)
                    body(phase, meter)
                    phases[key].add(phase)
                stack.check_alive()

        if args.scale:
            run_scale(args, stack, phases, meter, {"b": floor, "w1": gateway,
                                                   "w2": WsCaller(stack.ws_url(stack.scale_port),
                                                                  bench_service.SERVICE, compression)})
        stamps = {}
        if args.stamps:
            say("stamped calls (request / reply legs) ...")
            floor.stamped(min(args.stamps, warm), args.max_seconds)  # warm-up
            gateway.stamped(min(args.stamps, warm), args.max_seconds)
            stamps["(b) plain Celery floor"] = legs(floor.stamped(args.stamps, args.max_seconds))
            stamps["(c) gateway over WebSocket"] = legs(gateway.stamped(args.stamps, args.max_seconds))
        if args.modes:
            run_modes(args, stack, phases, meter, compression)
        say("done; stopping the stack after the report")
        print_report(args, stack, phases, stamps)
        if args.json is not None:
            write_json(args, stack, phases, stamps)
        failed = False
        return 0
    finally:
        # a second Ctrl-C (or a SIGTERM) must not cut the clean-up short: it is bounded (stop() kills
        # after a grace period), and it is what leaves no process behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if profiler is not None:
            profiler.stop()
        if scraper is not None:
            scraper.stop()
        plain = getattr(stack, "plain", None)
        for closable in (old_app, plain and plain.app, client, plain_client):
            if closable is not None:
                closable.close()
        stack.finish(failed or args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Overload benchmark (issue 11, item 2): more callers than the worker can serve, for 30 s.

    python -m bench.bench_overload [--clients 1000] [--seconds 30] [--pipeline 4]
                                   [--client-processes 4] [--gateway-env NAME=VALUE ...]
                                   [--profile DIR] [--json PATH]

Starts, each on a free port and stopped by PID at the end (also on Ctrl-C, SIGTERM or an
error): one ``redis-server``, one ``genapi worker bench.bench_service`` (its default pool)
and one ``genapi gateway`` with its defaults (one gunicorn gevent process); ``--gateway-env``
changes one of its settings, e.g. ``GENAPI_MAX_IN_FLIGHT=2`` or ``GENAPI_MAX_QUEUE_LENGTH=500``.

``--clients`` WebSocket clients, spread over ``--client-processes`` processes (one asyncio
loop each, so the client is not the bottleneck), call ``bench.echo`` as fast as they can:
each keeps ``--pipeline`` calls in flight and sends the next one as soon as one is
answered, for ``--seconds``. Then nothing more is sent and every client waits for its
outstanding calls (``--drain`` seconds at most), then listens one more second for frames
that should not come. Every request id is counted: a terminal frame is ``ok`` (success),
``refused`` (``Service temporarily unavailable``) or another error (by message, e.g.
``Request timed out``); a second frame for the same id is a duplicate, a request without
any frame at the end is missing. Both must be 0.

Meanwhile, from this process:

- a pinger on its own connection sends ``gateway/ping`` every 50 ms and records each
  round trip (p50/p99/max over the load window; the issue asks p99 < 100 ms);
- every 100 ms: the RSS of the gateway's worker process (the gunicorn child) and of the
  genapi worker (its main process plus its pool's children, summed), from ``/proc``, and
  ``LLEN`` of the service queue ``genapi.bench``; the peaks are reported.

``--profile DIR`` records the gateway process with py-spy (raw collapsed stacks) during the
load window; summarise with ``bench/profile_summary.py``. ``--json PATH`` writes the results
(keys: clients, seconds, ok, refused, other_errors, missing, duplicates, ping_p50_ms,
ping_p99_ms, ping_max_ms, gateway_peak_rss_kb, worker_peak_rss_kb, max_queue_len, and more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from websockets.sync.client import connect as sync_connect  # noqa: E402

from bench import bench_service  # noqa: E402
from bench.callers import WsCaller  # noqa: E402
from bench.common import SECRET, BaseStack, code_version, say, terminated  # noqa: E402
from bench.measure import group_cpu  # noqa: E402
from gateway_app import processes  # noqa: E402
from gateway_app.auth import mint_token  # noqa: E402

UNAVAILABLE = "Service temporarily unavailable"
CONNECT_AT_ONCE = 50  # WebSocket handshakes in flight at a time, per client process
SAMPLE_EVERY = 0.1  # seconds between RSS and queue samples
GRACE = 1.0  # seconds each client keeps listening after its last answer (duplicates)
PING_P99_MUST_MS = 100.0


# ---------------------------------------------------------------------------- the stack


class Stack(BaseStack):
    """redis-server, the genapi worker and one gateway."""

    def __init__(self, workdir: Path, gateway_env: dict[str, str]) -> None:
        self.port = processes.free_port()
        super().__init__(workdir, self.port)
        self.gateway_env = gateway_env

    def start(self) -> None:
        self.start_redis()
        self.worker = self.spawn("worker", [sys.executable, "-m", "gateway_app", "worker", "bench.bench_service"],
                                 self.env())
        self.gateway = self.spawn("gateway", self.gateway_argv(self.port), self.env() | self.gateway_env)
        deadline = time.monotonic() + 60
        while not self._echo_works():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no echo call through the gateway within 60 s; see {self.workdir}")
            time.sleep(0.2)

    def _echo_works(self) -> bool:
        try:
            with WsCaller(self.url("bench-probe"), bench_service.SERVICE, None).session() as call:
                return call(1)
        except Exception:
            return False

    def url(self, user: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?token={mint_token(SECRET, user, [])}"


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def rss_kb(pid: int) -> int:
    """Resident memory of one process, in KB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------------------- samplers


class Sampler:
    """Every 100 ms: RSS of the gateway process and of the worker's process tree, the queue's length."""

    def __init__(self, gateway_pid: int, worker_pid: int, redis_url: str) -> None:
        self.gateway_pid = gateway_pid
        self.worker_pid = worker_pid
        self.client = redis.Redis.from_url(redis_url)
        self.gateway_peak = self.worker_peak = self.max_queue = 0
        self.gateway_start = rss_kb(gateway_pid)
        self.gateway_rss: list[tuple[float, int]] = []  # (seconds since start, KB), once a second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def _run(self) -> None:
        pool = children(self.worker_pid)
        started = time.monotonic()
        while not self._stop.wait(SAMPLE_EVERY):
            gateway = rss_kb(self.gateway_pid)
            self.gateway_peak = max(self.gateway_peak, gateway)
            if time.monotonic() - started >= len(self.gateway_rss):
                self.gateway_rss.append((round(time.monotonic() - started, 1), gateway))
            self.worker_peak = max(self.worker_peak, rss_kb(self.worker_pid) + sum(rss_kb(p) for p in pool))
            try:
                self.max_queue = max(self.max_queue, self.client.llen(bench_service.QUEUE))
            except redis.RedisError:
                pass

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


class Pinger:
    """``gateway/ping`` every ``interval`` seconds on a connection of its own, while :attr:`on`."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.latencies: list[float] = []  # ms, while measuring
        self.errors = 0
        self.measuring = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinger", daemon=True)

    def _run(self) -> None:
        with sync_connect(self.url, max_size=None, open_timeout=30, proxy=None) as ws:
            n = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                n += 1
                started = time.perf_counter()
                ws.send(json.dumps({"service": "gateway", "request_type": "ping", "request_id": n}))
                try:
                    frame = json.loads(ws.recv(timeout=10))
                except TimeoutError:
                    frame = {}
                took = (time.perf_counter() - started) * 1000
                if frame.get("request_id") != n or frame.get("result") != "pong":
                    self.errors += 1
                elif self.measuring:
                    self.latencies.append(took)
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
                next_at = max(next_at, time.monotonic())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


# ---------------------------------------------------------------------------- a client process


class Tally:
    """What one client process saw."""

    def __init__(self) -> None:
        self.sent = self.ok = self.refused = self.duplicates = self.missing = self.unknown = 0
        self.errors: Counter[str] = Counter()
        self.closed = 0  # connections that closed before the end

    def to_json(self) -> dict:
        return {"sent": self.sent, "ok": self.ok, "refused": self.refused, "duplicates": self.duplicates,
                "missing": self.missing, "unknown": self.unknown, "errors": dict(self.errors),
                "closed": self.closed}


async def drive(ws, name: str, pipeline: int, stop_at: float, drain: float, tally: Tally) -> None:
    """Keep ``pipeline`` echo calls in flight until ``stop_at``; then wait for the rest."""
    answers: dict[str, int] = {}
    outstanding = 0

    async def send() -> None:
        nonlocal outstanding
        request_id = f"{name}-{tally.sent}"
        tally.sent += 1
        answers[request_id] = 0
        outstanding += 1
        await ws.send(json.dumps({"service": bench_service.SERVICE, "request_type": "echo",
                                  "request_id": request_id, "args": {"value": tally.sent}}))

    for _ in range(pipeline):
        await send()
    give_up = stop_at + drain
    quiet_until = None
    while True:
        now = time.monotonic()
        until = quiet_until if outstanding == 0 else give_up
        if until is None:
            until = quiet_until = now + GRACE
        if now >= until:
            break
        try:
            text = await asyncio.wait_for(ws.recv(), until - now)
        except TimeoutError:
            continue
        frame = json.loads(text)
        seen = answers.get(frame.get("request_id"))
        if seen is None:
            tally.unknown += 1
            continue
        answers[frame["request_id"]] = seen + 1
        if seen:
            tally.duplicates += 1
            continue
        outstanding -= 1
        if frame.get("success"):
            tally.ok += 1
        elif frame.get("error") == UNAVAILABLE:
            tally.refused += 1
        else:
            tally.errors[str(frame.get("error"))] += 1
        if time.monotonic() < stop_at:
            await send()
    tally.missing += outstanding


async def client_main(config: dict) -> dict:
    """One client process: connect, say ready, wait for ``go``, drive, report."""
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def open_one(i: int):
        async with gate:
            user = f"{config['name']}-{i}"
            url = f"{config['url']}?token={mint_token(SECRET, user, [])}"
            return await connect(url, max_size=None, compression=None, proxy=None, open_timeout=60,
                                 ping_interval=None)

    sockets = await asyncio.gather(*(open_one(i) for i in range(config["clients"])))
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop_at = float(line.split()[1])
    tally = Tally()

    async def one(i: int, ws) -> None:
        try:
            await drive(ws, f"{config['name']}-{i}", config["pipeline"], stop_at, config["drain"], tally)
        except Exception:  # the connection closed: what it still waited for is missing
            tally.closed += 1
    await asyncio.gather(*(one(i, ws) for i, ws in enumerate(sockets)))
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return tally.to_json()


def run_client(config_json: str) -> int:
    result = asyncio.run(client_main(json.loads(config_json)))
    print(json.dumps(result), flush=True)
    return 0


# ---------------------------------------------------------------------------- the run


def start_clients(args, stack: Stack) -> list[subprocess.Popen]:
    """``--client-processes`` processes sharing ``--clients``; returns once all are connected."""
    share, extra = divmod(args.clients, args.client_processes)
    procs = []
    for i in range(args.client_processes):
        config = {"url": f"ws://127.0.0.1:{stack.port}/ws", "clients": share + (1 if i < extra else 0),
                  "name": f"c{i}", "pipeline": args.pipeline, "drain": args.drain}
        procs.append(subprocess.Popen([sys.executable, __file__, "--client-config", json.dumps(config)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
                                      start_new_session=True))  # a process group of its own: its CPU
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"client process {proc.pid} did not connect; exit code {proc.poll()}")
    return procs


def stop_clients(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each component (a list of process groups)."""
    return {name: sum(group_cpu(pgid) for pgid in pgids) for name, pgids in groups.items()}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def profile(args, pid: int) -> subprocess.Popen | None:
    if not args.profile:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = args.profile / "overload-gateway.txt"
    return subprocess.Popen([py_spy, "record", "--nonblocking", "--format", "raw", "--rate", "100",
                             "--pid", str(pid), "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def load(args, stack: Stack, gateway_pid: int) -> dict:
    """The measured part: clients, pinger and samplers; returns the results."""
    sampler = Sampler(gateway_pid, stack.worker.pid, stack.redis_url)
    pinger = Pinger(stack.url("bench-pinger"), args.ping_interval)
    clients: list[subprocess.Popen] = []
    try:
        pinger.start()
        say(f"connecting {args.clients} clients in {args.client_processes} processes")
        clients = start_clients(args, stack)
        sampler.start()
        spy = profile(args, gateway_pid)
        say(f"go: {args.seconds:g} s, {args.pipeline} calls in flight per client")
        groups = {"gateway": [stack.gateway.pid], "worker": [stack.worker.pid],
                  "redis": [stack.started[0][1].pid], "clients": [proc.pid for proc in clients]}
        cpu_before = cpu_seconds(groups)
        stop_at = time.monotonic() + args.seconds
        pinger.measuring = True
        for proc in clients:
            proc.stdin.write(f"go {stop_at}\n")
            proc.stdin.flush()
        time.sleep(max(0.0, stop_at - time.monotonic()))
        pinger.measuring = False
        cpu_after = cpu_seconds(groups)
        stop_profile(spy)
        say(f"load over; draining (at most {args.drain:g} s)")
        tallies = [json.loads(proc.stdout.readline() or "{}") for proc in clients]
        for proc in clients:
            proc.wait(30)
    finally:
        stop_clients(clients)
        pinger.stop()
        sampler.stop()
    results = summarise(args, tallies, pinger, sampler)
    results["cores"] = {name: round((cpu_after[name] - cpu_before[name]) / args.seconds, 2) for name in groups}
    return results


def summarise(args, tallies: list[dict], pinger: Pinger, sampler: Sampler) -> dict:
    if any(not t for t in tallies):
        raise RuntimeError("a client process ended without its results")
    errors: Counter[str] = Counter()
    for t in tallies:
        errors.update(t["errors"])
    total = {key: sum(t[key] for t in tallies) for key in ("sent", "ok", "refused", "duplicates", "missing",
                                                           "unknown", "closed")}
    return {
        "clients": args.clients, "seconds": args.seconds, "pipeline": args.pipeline,
        "client_processes": args.client_processes, "gateway_env": dict(args.gateway_env),
        "sent": total["sent"], "ok": total["ok"], "refused": total["refused"],
        "other_errors": sum(errors.values()), "errors": dict(errors.most_common()),
        "missing": total["missing"], "duplicates": total["duplicates"], "unknown_frames": total["unknown"],
        "closed_connections": total["closed"],
        "ok_per_s": total["ok"] / args.seconds, "answered_per_s": (total["ok"] + total["refused"]) / args.seconds,
        "pings": len(pinger.latencies), "ping_errors": pinger.errors,
        "ping_p50_ms": percentile(pinger.latencies, 0.50), "ping_p99_ms": percentile(pinger.latencies, 0.99),
        "ping_max_ms": max(pinger.latencies, default=float("nan")),
        "gateway_start_rss_kb": sampler.gateway_start, "gateway_peak_rss_kb": sampler.gateway_peak,
        "worker_peak_rss_kb": sampler.worker_peak, "max_queue_len": sampler.max_queue,
        "gateway_rss_timeline_kb": sampler.gateway_rss,
        "code_version": code_version(),
    }


def print_report(results: dict) -> None:
    r = results
    print()
    print(f"overload: {r['clients']} clients x {r['pipeline']} in flight, {r['seconds']:g} s, "
          f"gateway env {r['gateway_env'] or 'defaults'}")
    print(f"  requests sent            {r['sent']:>10}")
    print(f"  ok                       {r['ok']:>10}   ({r['ok_per_s']:.0f}/s)")
    print(f"  refused (unavailable)    {r['refused']:>10}")
    print(f"  other errors             {r['other_errors']:>10}   {r['errors'] or ''}")
    print(f"  missing                  {r['missing']:>10}   (must be 0)")
    print(f"  duplicates               {r['duplicates']:>10}   (must be 0)")
    if r["unknown_frames"] or r["closed_connections"]:
        print(f"  unknown frames {r['unknown_frames']}, connections closed early {r['closed_connections']}")
    verdict = "ok" if r["ping_p99_ms"] < PING_P99_MUST_MS else "MISSED"
    print(f"  gateway/ping ms          p50 {r['ping_p50_ms']:.1f}  p99 {r['ping_p99_ms']:.1f}  "
          f"max {r['ping_max_ms']:.1f}  ({r['pings']} pings, {r['ping_errors']} errors; p99 < 100: {verdict})")
    timeline = r["gateway_rss_timeline_kb"]
    print(f"  gateway RSS              {r['gateway_start_rss_kb'] / 1024:.0f} MB before, "
          f"peak {r['gateway_peak_rss_kb'] / 1024:.0f} MB, "
          f"after the drain {timeline[-1][1] / 1024 if timeline else 0:.0f} MB; every 5 s: "
          + " ".join(f"{kb / 1024:.0f}" for _, kb in timeline[::5]))
    print(f"  worker RSS (tree)        peak {r['worker_peak_rss_kb'] / 1024:.0f} MB")
    print(f"  max queue length         {r['max_queue_len']}")
    print(f"  cores busy               {r['cores']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pipeline", type=int, default=4, help="calls each client keeps in flight")
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--ping-interval", type=float, default=0.05)
    parser.add_argument("--drain", type=float, default=20.0, help="seconds to wait for outstanding calls")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        type=lambda text: tuple(text.split("=", 1)))
    parser.add_argument("--profile", type=Path, help="py-spy the gateway during the load into this directory")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client-config"]:
        return run_client(argv[1])
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix="genapi-bench-overload-"))
    stack = Stack(workdir, dict(args.gateway_env))
    try:
        say(f"starting redis, worker and gateway (logs in {workdir})")
        stack.start()
        processes.wait_until(lambda: children(stack.gateway.pid), 10, "the gateway's worker process")
        gateway_pid = children(stack.gateway.pid)[0]
        results = load(args, stack, gateway_pid)
    finally:
        stack.finish(args.keep)
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results["missing"] == 0 and results["duplicates"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Idle-socket benchmark (issue 11): how many idle authenticated WebSockets one gateway process
holds, and what each one costs in memory.

    python bench/bench_idle.py [--sockets 10000] [--no-max] [--json PATH]

One fresh ``redis-server`` (free port, temp dir) and, per phase, one fresh ``genapi gateway
--workers 1`` (one gunicorn gevent worker process; no Celery worker: ``gateway/ping`` is
answered by the gateway itself). Every process is stopped by PID at the end, also on Ctrl-C,
SIGTERM or an error.

Phases:

- ``10k``: ``--sockets`` sockets (default 10000) against a gateway with the product's default
  ``--worker-connections`` (10000; a larger ``--sockets`` gets a larger one);
- ``max`` (on by default, ``--no-max`` skips it): as many sockets as the gateway worker's
  open-files soft limit allows (read from ``/proc/<pid>/limits`` once it runs; the gateway
  raises its soft limit to the hard one as it starts) minus ``--margin`` for its own files.

Each phase measures, on the gateway's gunicorn WORKER process (not the arbiter):

1. its RSS (``VmRSS``) and open files once it has settled, before any client connects;
2. open: every socket connects with its own user's signed token and stays idle;
   connections per second = sockets / wall time of the whole open;
3. its RSS once settled again: KB per socket = RSS growth / sockets;
4. a ``gateway/ping`` on EVERY socket (a few in flight per client process at a time): the
   sockets that do not answer ``pong`` within 10 s are failures; p50/p99 of the round trips;
5. close: every client closes its sockets; the gateway's ``genapi_connections`` gauge (its
   ``/metrics``) must fall back to what it was before, and its open files too (polled, with
   a deadline).

Both ends run on this machine and each socket needs a file descriptor on both: the clients
are spread over several processes (``--per-client`` sockets at most each, asyncio
``websockets`` clients), each raising its own open-files soft limit to the hard one, as this
process does too. The machine's limits are printed with the results; see
docs/performance.md for how to raise them.

``--json PATH`` writes the results: ``{"phases": {"10k": {...}, "max": {...}}, ...}`` with,
per phase, ``sockets, connect_per_s, rss_before_kb, rss_after_kb, kb_per_socket,
ping_failures, ping_p50_ms, ping_p99_ms, nofile_soft, nofile_hard`` and more. The exit code
is 1 when a socket failed to open or to answer, or the gateway did not let its connections
go after the close.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import resource
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import SECRET, BaseStack, code_version, say, terminated  # noqa: E402
from bench.measure import machine_busy  # noqa: E402
from gateway_app import processes  # noqa: E402
from gateway_app.auth import mint_token  # noqa: E402

DEFAULT_SOCKETS = 10_000
DEFAULT_WORKER_CONNECTIONS = 10_000  # the product's default (genapi gateway --worker-connections)
MARGIN = 200  # open files the gateway process keeps for itself (Redis, logs, metrics, listening socket)
PER_CLIENT = 5_000  # sockets per client process at most
CONNECT_AT_ONCE = 50  # WebSocket handshakes in flight per client process
PING_AT_ONCE = 16  # pings in flight per client process
CLOSE_AT_ONCE = 200  # close handshakes in flight per client process
CALL_TIMEOUT = 10.0  # seconds for one handshake, one ping or one close
SETTLE_TIMEOUT = 30.0  # seconds for the gateway's RSS to settle
RELEASE_TIMEOUT = 60.0  # seconds for the gateway to drop every closed connection
TARGET_KB, AIM_KB = 50.0, 30.0  # per idle socket: must, aim (issue 11)
PING = {"service": "gateway", "request_type": "ping", "args": {}}


# ---------------------------------------------------------------------------- /proc


def raise_open_files() -> tuple[int, int]:
    """Raise this process's open-files soft limit to the hard one; returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass  # an unlimited hard limit cannot be a soft one: keep the soft limit
    return soft, hard


def open_files_limits(pid: int) -> tuple[int, int]:
    """(soft, hard) "Max open files" of a process, from ``/proc/<pid>/limits``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return _limit(soft), _limit(hard)
    raise RuntimeError(f"no open-files limit in /proc/{pid}/limits")


def _limit(text: str) -> int:
    return resource.RLIM_INFINITY if text == "unlimited" else int(text)


def rss_kb(pid: int) -> int:
    """The process's resident set size (``VmRSS``), KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    """The process's child processes (every thread's ``children`` list)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def settled_rss(pid: int, timeout: float = SETTLE_TIMEOUT) -> tuple[int, bool]:
    """The process's RSS once it stops moving (2 s within 0.5 % or 256 KB); (KB, settled).
    Past ``timeout`` the last sample, and False."""
    samples: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        samples = [*samples[-7:], rss_kb(pid)]
        if len(samples) == 8 and max(samples) - min(samples) <= max(256, samples[-1] // 200):
            return samples[-1], True
        if time.monotonic() > deadline:
            return samples[-1], False
        time.sleep(0.25)


# ---------------------------------------------------------------------------- the client processes


class ClientSockets:
    """One client process's sockets (asyncio ``websockets``), driven by commands on a pipe."""

    def __init__(self, port: int, users: range) -> None:
        self.port = port
        self.users = users
        self.sockets: list = []

    async def open(self) -> dict:
        """Connect every user; failures are counted, the first one described."""
        from websockets.asyncio.client import connect

        gate = asyncio.Semaphore(CONNECT_AT_ONCE)

        async def one(user: int):
            url = f"ws://127.0.0.1:{self.port}/ws?token={mint_token(SECRET, f'idle-{user:05d}')}"
            async with gate:
                return await connect(url, compression=None, ping_interval=None, open_timeout=CALL_TIMEOUT,
                                     close_timeout=CALL_TIMEOUT, max_queue=4, max_size=1 << 16)

        results = await asyncio.gather(*(one(u) for u in self.users), return_exceptions=True)
        self.sockets = [r for r in results if not isinstance(r, BaseException)]
        errors = [r for r in results if isinstance(r, BaseException)]
        return {"opened": len(self.sockets), "failures": len(errors), "first_error": _describe(errors)}

    async def ping(self) -> dict:
        """One ``gateway/ping`` on every socket; round trips (ns) of those answered ``pong``."""
        gate = asyncio.Semaphore(PING_AT_ONCE)

        async def one(index: int, ws) -> int:
            async with gate:
                request_id = f"ping-{index}"
                started = time.perf_counter_ns()
                await ws.send(json.dumps({**PING, "request_id": request_id}))
                frame = json.loads(await asyncio.wait_for(ws.recv(), CALL_TIMEOUT))
                elapsed = time.perf_counter_ns() - started
                if frame.get("request_id") != request_id or frame.get("result") != "pong":
                    raise RuntimeError(f"unexpected answer {frame}")
                return elapsed

        results = await asyncio.gather(*(one(i, ws) for i, ws in enumerate(self.sockets)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        return {"latencies": [r for r in results if isinstance(r, int)], "failures": len(errors),
                "first_error": _describe(errors)}

    async def close(self) -> dict:
        """Close every socket (the close handshake); failures are counted."""
        gate = asyncio.Semaphore(CLOSE_AT_ONCE)

        async def one(ws) -> None:
            async with gate:
                await ws.close()

        results = await asyncio.gather(*(one(ws) for ws in self.sockets), return_exceptions=True)
        self.sockets = []
        errors = [r for r in results if isinstance(r, BaseException)]
        return {"failures": len(errors), "first_error": _describe(errors)}

    async def serve(self, pipe) -> None:
        """Answer commands (``open``, ``ping``, ``close``; ``exit`` ends) until told to stop."""
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "exit":
                await self.close()
                return
            pipe.send(await getattr(self, command)())


def _describe(errors: list[BaseException]) -> str | None:
    return f"{type(errors[0]).__name__}: {errors[0]}"[:300] if errors else None


def client_main(pipe, port: int, users: range) -> None:
    """A client process: raise the open-files limit, then serve the parent's commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    raise_open_files()
    pipe.send("ready")
    asyncio.run(ClientSockets(port, users).serve(pipe))


class Clients:
    """The client processes of one phase, ``per_client`` sockets each at most."""

    def __init__(self, port: int, sockets: int, per_client: int) -> None:
        context = multiprocessing.get_context("spawn")
        count = max(1, math.ceil(sockets / per_client))
        self.pipes, self.processes = [], []
        for i in range(count):
            users = range(sockets * i // count, sockets * (i + 1) // count)
            parent, child = context.Pipe()
            process = context.Process(target=client_main, args=(child, port, users), daemon=True,
                                      name=f"bench-idle-client-{i}")
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        for pipe in self.pipes:
            self._receive(pipe, 60)

    def command(self, name: str, timeout: float) -> list[dict]:
        """Send ``name`` to every client process, then wait for every answer."""
        for pipe in self.pipes:
            pipe.send(name)
        return [self._receive(pipe, timeout) for pipe in self.pipes]

    def _receive(self, pipe, timeout: float):
        deadline = time.monotonic() + timeout
        while not pipe.poll(0.5):
            dead = [p.name for p in self.processes if not p.is_alive()]
            if dead:
                raise RuntimeError(f"client process {dead[0]} died")
            if time.monotonic() > deadline:
                raise TimeoutError(f"a client process did not answer within {timeout:.0f}s")
        return pipe.recv()

    def stop(self) -> None:
        """Tell every client process to close and exit; stop the ones that do not, by PID."""
        for pipe in self.pipes:
            try:
                pipe.send("exit")
            except OSError:
                pass
        for process in self.processes:
            process.join(30)
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


# ---------------------------------------------------------------------------- the gateway


class Stack(BaseStack):
    """redis-server and one gateway at a time (a fresh one per phase); stopped by PID."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.gateway = None
        self.port = 0

    def start_gateway(self, worker_connections: int | None, phase: str) -> int:
        """Start a gateway (``worker_connections`` None: the product's default), wait until it
        answers a ping; returns its worker process's PID."""
        self.port = processes.free_port()
        extra = [] if worker_connections is None else ["--worker-connections", str(worker_connections)]
        self.gateway = self.spawn(f"gateway-{phase}", self.gateway_argv(self.port, 1, *extra), self.env())
        processes.wait_until(self.answers_ping, 60, "the gateway's gateway/ping", self.gateway, interval=0.2)
        processes.wait_until(lambda: len(children(self.gateway.pid)) == 1, 10, "the gateway's worker process",
                             self.gateway)
        return children(self.gateway.pid)[0]

    def answers_ping(self) -> bool:
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{self.port}/ws?token={mint_token(SECRET, 'bench-probe')}",
                     open_timeout=5) as ws:
            ws.send(json.dumps({**PING, "request_id": "probe"}))
            return json.loads(ws.recv(timeout=5)).get("result") == "pong"

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            processes.stop(self.gateway)
            self.started = [(n, p) for n, p in self.started if p is not self.gateway]
            self.gateway = None

    def connections(self) -> float | None:
        """The gateway's ``genapi_connections`` gauge (``/metrics``), or None without it."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith("genapi_connections"):
                    return float(line.rsplit(None, 1)[1])
        return None


# ---------------------------------------------------------------------------- one phase


@dataclass
class PhaseResult:
    """What one phase measured (the JSON keys)."""

    sockets: int
    worker_connections: int
    nofile_soft: int
    nofile_hard: int
    client_processes: int = 0
    opened: int = 0
    open_failures: int = 0
    open_s: float = 0.0
    connect_per_s: float = 0.0
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    rss_settled: bool = True
    kb_per_socket: float = 0.0
    fds_before: int = 0
    fds_after: int = 0
    ping_failures: int = 0
    ping_p50_ms: float = float("nan")
    ping_p99_ms: float = float("nan")
    ping_sweep_s: float = 0.0
    close_failures: int = 0
    released_s: float | None = None
    connections_after_close: float | None = None
    fds_after_close: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.open_failures or self.ping_failures or self.released_s is None)


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile, ns in, ms out."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1] / 1e6


def run_phase(stack: Stack, name: str, sockets: int | None, args: argparse.Namespace) -> PhaseResult:
    """Start a fresh gateway, then open, measure, ping and close; the gateway is stopped after."""
    connections = None if sockets is not None and sockets <= DEFAULT_WORKER_CONNECTIONS else \
        (sockets + args.margin if sockets is not None else args.client_limits[1])
    say(f"[{name}] starting a gateway (--worker-connections {connections or 'default'}) ...")
    worker = stack.start_gateway(connections, name)
    try:
        soft, hard = open_files_limits(worker)
        sockets = sockets if sockets is not None else soft - args.margin
        result = PhaseResult(sockets, connections or DEFAULT_WORKER_CONNECTIONS, soft, hard)
        if sockets + args.margin > soft:
            raise SystemExit(f"bench: {sockets} sockets do not fit the gateway's open-files soft limit {soft} "
                             f"with a margin of {args.margin}")
        measure(stack, worker, result, args)
        return result
    finally:
        stack.stop_gateway()


def measure(stack: Stack, worker: int, result: PhaseResult, args: argparse.Namespace) -> None:
    """The phase's steps, against the gateway worker ``worker``."""
    result.rss_before_kb, settled = settled_rss(worker)
    result.fds_before = open_files(worker)
    baseline = stack.connections()
    say(f"gateway worker {worker}: RSS {result.rss_before_kb / 1024:.1f} MB, {result.fds_before} open files, "
        f"open files limit soft {result.nofile_soft} hard {result.nofile_hard}")
    clients = Clients(stack.port, result.sockets, args.per_client)
    result.client_processes = len(clients.processes)
    try:
        open_sockets(clients, result)
        stack.check_alive()
        result.rss_after_kb, result.rss_settled = settled_rss(worker)
        result.rss_settled = result.rss_settled and settled
        result.fds_after = open_files(worker)
        result.kb_per_socket = (result.rss_after_kb - result.rss_before_kb) / max(result.opened, 1)
        say(f"  RSS {result.rss_after_kb / 1024:.1f} MB ({result.kb_per_socket:.1f} KB per socket), "
            f"{result.fds_after} open files")
        ping_all(clients, result)
        stack.check_alive()
        close_all(clients, result)
    finally:
        clients.stop()
    wait_released(stack, worker, result, baseline)


def open_sockets(clients: Clients, result: PhaseResult) -> None:
    say(f"  opening {result.sockets} sockets from {len(clients.processes)} client processes ...")
    started = time.perf_counter()
    answers = clients.command("open", CALL_TIMEOUT + result.sockets / 50)
    result.open_s = time.perf_counter() - started
    result.opened = sum(a["opened"] for a in answers)
    result.open_failures = sum(a["failures"] for a in answers)
    result.errors += [a["first_error"] for a in answers if a["first_error"]]
    result.connect_per_s = result.opened / result.open_s
    say(f"  {result.opened} open in {result.open_s:.1f}s ({result.connect_per_s:.0f}/s), "
        f"{result.open_failures} failed")


def ping_all(clients: Clients, result: PhaseResult) -> None:
    say(f"  gateway/ping on each of the {result.opened} sockets ...")
    started = time.perf_counter()
    answers = clients.command("ping", CALL_TIMEOUT + result.opened / 100)
    result.ping_sweep_s = time.perf_counter() - started
    latencies = [ns for a in answers for ns in a["latencies"]]
    result.ping_failures = sum(a["failures"] for a in answers) + result.open_failures
    result.errors += [a["first_error"] for a in answers if a["first_error"]]
    result.ping_p50_ms, result.ping_p99_ms = percentile(latencies, 50), percentile(latencies, 99)
    say(f"  {len(latencies)} answered in {result.ping_sweep_s:.1f}s, p50 {result.ping_p50_ms:.2f} ms, "
        f"p99 {result.ping_p99_ms:.2f} ms; {result.ping_failures} did not (unopened ones included)")


def close_all(clients: Clients, result: PhaseResult) -> None:
    answers = clients.command("close", CALL_TIMEOUT + result.opened / 100)
    result.close_failures = sum(a["failures"] for a in answers)
    result.errors += [a["first_error"] for a in answers if a["first_error"]]


def wait_released(stack: Stack, worker: int, result: PhaseResult, baseline: float | None) -> None:
    """Until the gateway's connection gauge is back at ``baseline`` and its open files near
    where they were (the clients are gone by now)."""
    started = time.perf_counter()
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while True:
        result.connections_after_close = stack.connections()
        result.fds_after_close = open_files(worker)
        if result.connections_after_close == baseline and result.fds_after_close <= result.fds_before + 10:
            result.released_s = time.perf_counter() - started
            say(f"  closed; the gateway let go of them within {result.released_s:.1f}s")
            return
        if time.monotonic() > deadline:
            result.errors.append(f"after the close the gateway still counts {result.connections_after_close} "
                                 f"connections and has {result.fds_after_close} open files")
            say(f"  NOT released: {result.errors[-1]}")
            return
        time.sleep(0.25)


# ---------------------------------------------------------------------------- report


def print_report(args: argparse.Namespace, results: dict[str, PhaseResult]) -> None:
    print()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   machine: {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}   code: {code_version()}   busy before: {args.busy_before:.2f} cores")
    print(f"gateway: genapi gateway --workers 1 (one gunicorn gevent worker; RSS and files of that worker); "
          f"clients: asyncio websockets, <= {args.per_client} sockets per process; open files of this process: "
          f"soft {args.client_limits[0]}, hard {args.client_limits[1]}")
    print()
    header = (f"{'phase':<6} {'sockets':>7} {'open s':>7} {'conn/s':>7} {'RSS before MB':>13} {'RSS after MB':>12} "
              f"{'KB/socket':>9} {'ping fail':>9} {'ping p50':>8} {'ping p99':>8} {'released':>8} "
              f"{'nofile soft/hard':>16}")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        released = "no" if r.released_s is None else f"{r.released_s:.1f}s"
        print(f"{name:<6} {r.opened:>7} {r.open_s:>7.1f} {r.connect_per_s:>7.0f} {r.rss_before_kb / 1024:>13.1f} "
              f"{r.rss_after_kb / 1024:>12.1f} {r.kb_per_socket:>9.1f} {r.ping_failures:>9} {r.ping_p50_ms:>8.2f} "
              f"{r.ping_p99_ms:>8.2f} {released:>8} {f'{r.nofile_soft}/{r.nofile_hard}':>16}")
    print()
    for name, r in results.items():
        verdict = "MET" if r.kb_per_socket <= TARGET_KB and r.ok else "MISSED"
        aim = "MET" if r.kb_per_socket <= AIM_KB and r.ok else "MISSED"
        print(f"{name}: {r.opened} idle sockets at {r.kb_per_socket:.1f} KB each: <= {TARGET_KB:.0f} KB (must) "
              f"{verdict}, <= {AIM_KB:.0f} KB (aim) {aim}" + ("" if r.rss_settled else "  (RSS had not settled)"))
        for error in r.errors[:3]:
            print(f"  error: {error}")


def write_json(args: argparse.Namespace, results: dict[str, PhaseResult]) -> None:
    phases = {}
    for name, r in results.items():
        phases[name] = {**asdict(r), "ok": r.ok}
    document = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "code": code_version(),
                "machine": platform.node(), "cores": os.cpu_count(), "busy_before": args.busy_before,
                "targets_kb": {"must": TARGET_KB, "aim": AIM_KB}, "phases": phases}
    args.json.write_text(json.dumps(document, indent=2))


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    parser.add_argument("--sockets", type=int, default=DEFAULT_SOCKETS,
                        help=f"idle sockets of the first phase (default {DEFAULT_SOCKETS})")
    parser.add_argument("--max", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the max phase: as many sockets as the gateway's open-files soft limit "
                             "allows, less --margin (default: on; --no-max skips it)")
    parser.add_argument("--margin", type=int, default=MARGIN,
                        help=f"open files the gateway keeps for itself in the max phase (default {MARGIN})")
    parser.add_argument("--per-client", type=int, default=PER_CLIENT,
                        help=f"sockets per client process at most (default {PER_CLIENT}; each needs one open "
                             "file in its client process)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    if args.sockets < 1 or args.margin < 0 or not 1 <= args.per_client < 10_000:
        parser.error("--sockets must be positive, --margin not negative, --per-client between 1 and 9999")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminated)
    args.client_limits = raise_open_files()  # the gateways and the client processes inherit it
    if args.client_limits[0] < args.per_client + 100:
        raise SystemExit(f"bench: the open-files limit ({args.client_limits[0]}) is below --per-client "
                         f"{args.per_client} (and some): lower --per-client or raise ulimit -Hn")
    workdir = Path(tempfile.mkdtemp(prefix="genapi-bench-idle-"))
    stack = Stack(workdir)
    results: dict[str, PhaseResult] = {}
    failed = True
    try:
        args.busy_before = machine_busy()
        say(f"machine busy before the run: {args.busy_before:.2f} of {os.cpu_count()} cores; this process's "
            f"open files: soft {args.client_limits[0]}, hard {args.client_limits[1]}; logs in {workdir}")
        stack.start_redis()
        results["10k"] = run_phase(stack, "10k", args.sockets, args)
        if args.max:
            results["max"] = run_phase(stack, "max", None, args)
        print_report(args, results)
        if args.json is not None:
            write_json(args, results)
        failed = not all(r.ok for r in results.values())
        return 1 if failed else 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.finish(failed or args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())

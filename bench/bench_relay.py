#!/usr/bin/env python
"""Relay fan-out benchmark (issue 8): one public group, its members spread over gateway processes.

    python -m bench.bench_relay [--members 1000] [--gateways 2] [--messages 200] [--flood-messages N]

One fresh ``redis-server`` (free port, temp dir) and ``--gateways`` ``genapi gateway``
processes (gunicorn, one gevent worker each, ``--worker-connections`` above what they hold)
are started; no worker: the ``relay`` service is answered by the gateway. Every process is
stopped by PID at the end, also on Ctrl-C, SIGTERM or an error.

All clients run in this process, in one asyncio loop (the ``websockets`` asyncio client),
each with a token of its own user (``member-0000`` ...), signed with the gateways'
``GENAPI_SECRET_KEY``:

- a creator (on the first gateway) creates a public group, and is the sender;
- ``--members`` members, split evenly over the gateways (member i on gateway i mod N),
  connect and join it.

Each message is ``{"seq": n, "t": perf_counter_ns()}`` taken right before the send; each
member stamps a relay frame when its ``recv()`` returns, so one clock serves both ends.
A delivery's latency is receive time - send time; latencies are pooled over all deliveries.

(r1) paced: ``--messages`` messages, one at a time; the next is sent when every member has
     received the previous one (or after a timeout, which counts the missing ones as errors);
(r2) flood: ``--flood-messages`` messages, each sent as soon as the previous one's sync
     reply came back; deliveries/s over the time from the first send to the last delivery,
     sends/s over the time from the first send to the last sync reply.

``--warmup`` paced messages go first, unmeasured. The report prints p50 and p99 of each row
against the targets of the issue (p99 of (r1) <= 100 ms must, <= 30 ms aim), and where the
time goes: the first and the last member's latency of each message (their gap is the
fan-out: the gateways handing the frame to each socket, and this process reading them), per
gateway, the CPU each process spends (the bench client included: with 1000 sockets in one
asyncio loop the readers' own cost is part of what is measured) and the Redis commands per
message.

``--readers N`` is a diagnostic that takes that cost out: every member joins, then all but N
per gateway stop reading (a large receive buffer each; the kernel keeps what the gateways
write), so the gateways still write every frame to every member and only N per gateway are
read and measured. ``--members 200`` is the other comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from bench.callers import WsCaller  # noqa: E402
from bench.common import SECRET, BaseStack, code_version, say, terminated  # noqa: E402
from bench.measure import Meter, Phase, machine_busy  # noqa: E402
from gateway_app import processes  # noqa: E402
from gateway_app.auth import mint_token  # noqa: E402

GROUP_ID = "bench-relay"
TARGET_P99_MS = 100.0  # must (issue 8)
AIM_P99_MS = 30.0  # aim
WORKER_CONNECTIONS = 4000  # per gateway process: more than the members it holds
CONNECT_AT_ONCE = 50  # WebSocket handshakes (and joins) in flight at a time
REPLY_TIMEOUT = 10.0  # seconds for one sync reply
DELIVERY_TIMEOUT = 10.0  # seconds for every member to receive one paced message
FLOOD_TIMEOUT = 120.0  # seconds for every delivery of the flood after its last send
LABEL = 44  # width of the row labels
FDS_PER_MEMBER = 2  # this process's socket, and some slack for the gateways' (they inherit the limit)
PASSIVE_BUFFER = 4 << 20  # --readers: SO_RCVBUF of a member that stops reading (the kernel caps it at rmem_max)


# ---------------------------------------------------------------------------- limits and the stack


def raise_open_files(needed: int) -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one if ``needed`` does not fit; returns (soft, hard).
    The gateways started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"bench: {needed} open files needed, the hard limit is {hard} (ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft, hard


class Stack(BaseStack):
    """redis-server and ``count`` gateway processes; stopped by PID in :meth:`stop`."""

    def __init__(self, workdir: Path, count: int, worker_connections: int) -> None:
        self.ports = [processes.free_port() for _ in range(count)]
        super().__init__(workdir, *self.ports)
        self.worker_connections = worker_connections

    def start(self) -> None:
        self.start_redis()
        for i, port in enumerate(self.ports):
            self.spawn(f"gateway {i + 1}", self.gateway_argv(port, 1, "--worker-connections",
                                                             str(self.worker_connections)), self.env())
        for i, port in enumerate(self.ports):
            self.wait_serving(port, f"gateway {i + 1}")

    def wait_serving(self, port: int, what: str) -> None:
        """Until the gateway's built-in ``gateway.ping`` answers over a WebSocket."""
        caller = WsCaller(self.ws_url(port, "bench-probe"), "gateway", None, ping=True)
        deadline = time.monotonic() + 60
        while True:
            self.check_alive()
            try:
                with caller.session() as call:
                    if call(1):
                        return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not answer a ping within 60 s; see {self.workdir}")
            time.sleep(0.2)

    def ws_url(self, port: int, user: str) -> str:
        return f"ws://127.0.0.1:{port}/ws?token={mint_token(SECRET, user, [])}"

# ---------------------------------------------------------------------------- the clients


class Deliveries:
    """Every relay frame the members received: (gateway index, latency ns) per message seq,
    and an event per message set when all ``expected`` members (the readers) have it; the
    group has ``members`` members and the creator."""

    def __init__(self, expected: int, members: int) -> None:
        self.expected = expected
        self.recipients = members + 1  # what a send's sync reply counts
        self.samples: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.last: dict[int, int] = {}  # seq -> perf_counter_ns of its last delivery
        self.done: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.unexpected = 0  # frames that are neither a sync reply nor a relay frame of the bench
        self.examples: list[str] = []  # the first few of them

    def record(self, message: dict, gateway: int, received_ns: int) -> None:
        seq = message["seq"]
        samples = self.samples[seq]
        samples.append((gateway, received_ns - message["t"]))
        self.last[seq] = received_ns
        if len(samples) >= self.expected:
            self.done[seq].set()

    def odd(self, text: str) -> None:
        self.unexpected += 1
        if len(self.examples) < 3:
            self.examples.append(text[:300])


class Client:
    """One WebSocket connection with its own user; :meth:`request` is a sync call on it
    (request ids are unique per connection), relay frames go to ``deliveries``."""

    def __init__(self, user: str, gateway: int, ws: ClientConnection, deliveries: Deliveries | None) -> None:
        self.user = user
        self.gateway = gateway
        self.ws = ws
        self.deliveries = deliveries
        self.ids = itertools.count()
        self.pending: dict[str, asyncio.Future] = {}
        self.reader: asyncio.Task | None = None

    async def request(self, request_type: str, args: dict) -> dict:
        """One ``relay`` call; its result, or RuntimeError with the error frame."""
        request_id = f"{self.user}-{next(self.ids)}"
        future = self.pending[request_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"service": "relay", "request_type": request_type,
                                       "request_id": request_id, "args": args}))
        frame = await asyncio.wait_for(future, REPLY_TIMEOUT)
        if not frame.get("success"):
            raise RuntimeError(f"{self.user}: relay {request_type} failed: {frame.get('error')}")
        return frame["result"]

    async def read(self) -> None:
        """Until the connection closes: sync replies resolve their request, relay frames are
        recorded (the receive time is taken first)."""
        async for text in self.ws:
            now = time.perf_counter_ns()
            frame = json.loads(text)
            future = self.pending.pop(frame.get("request_id"), None)
            if future is not None:  # the sync reply comes before the sender's own copy
                if not future.done():
                    future.set_result(frame)
                continue
            result = frame.get("result")
            message = result.get("message") if isinstance(result, dict) else None
            if frame.get("success") and isinstance(message, dict) and "seq" in message:
                if self.deliveries is not None:
                    self.deliveries.record(message, self.gateway, now)
            elif self.deliveries is not None:
                self.deliveries.odd(text)

    def start(self) -> None:
        self.reader = asyncio.create_task(self.read(), name=f"reader-{self.user}")

    def stop_reading(self) -> None:
        """Read nothing more: what the gateway sends waits in the kernel's buffers."""
        self.deliveries = None
        self.ws.transport.pause_reading()

    async def close(self) -> None:
        self.ws.transport.resume_reading()  # a passive member drains (unrecorded), then the close handshake
        await self.ws.close()
        if self.reader is not None:
            try:
                await asyncio.wait_for(self.reader, 5)
            except (TimeoutError, asyncio.CancelledError, Exception):
                pass


async def open_client(stack: Stack, user: str, gateway: int, deliveries: Deliveries | None,
                      gate: asyncio.Semaphore, buffer: int | None = None) -> Client:
    """A connected client, its reader started; ``buffer``: the socket's SO_RCVBUF (set before
    the connect, so the TCP window follows)."""
    async with gate:
        sock = None
        if buffer is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.ports[gateway]))
        ws = await connect(stack.ws_url(stack.ports[gateway], user), compression=None, max_size=None,
                           open_timeout=60, ping_interval=None, proxy=None, sock=sock)
    client = Client(user, gateway, ws, deliveries)
    client.start()
    return client


async def join(client: Client, gate: asyncio.Semaphore) -> None:
    async with gate:
        result = await client.request("join_group", {"group_id": GROUP_ID})
    if result.get("status") != "active":
        raise RuntimeError(f"{client.user}: join_group answered {result}")


# ---------------------------------------------------------------------------- the phases


async def send(sender: Client, seq: int, expected: int) -> None:
    """One message stamped with the send time; checks the sync reply."""
    result = await sender.request("send", {"group_id": GROUP_ID,
                                           "message": {"seq": seq, "t": time.perf_counter_ns()}})
    if result.get("status") != "relayed" or result.get("recipients_count") != expected:
        raise RuntimeError(f"send {seq}: unexpected sync result {result} (expected {expected} recipients)")


async def paced(sender: Client, deliveries: Deliveries, seqs: range) -> None:
    """One message at a time: the next after every member received this one (or the timeout)."""
    for seq in seqs:
        await send(sender, seq, deliveries.recipients)
        try:
            await asyncio.wait_for(deliveries.done[seq].wait(), DELIVERY_TIMEOUT)
        except TimeoutError:
            pass  # the missing deliveries count as errors


async def flood(sender: Client, deliveries: Deliveries, seqs: range) -> tuple[int, int, int]:
    """Each message right after the previous one's sync reply; returns (first send, last sync
    reply, last delivery) in perf_counter_ns (the last delivery after every member has all,
    or the timeout)."""
    first = time.perf_counter_ns()
    for seq in seqs:
        await send(sender, seq, deliveries.recipients)
    replied = time.perf_counter_ns()
    try:
        await asyncio.wait_for(asyncio.gather(*(deliveries.done[s].wait() for s in seqs)), FLOOD_TIMEOUT)
    except TimeoutError:
        pass
    last = max((deliveries.last[s] for s in seqs if s in deliveries.last), default=replied)
    return first, replied, last


@dataclass
class Row:
    """One measured row: its messages (seqs), and its phase (latencies, costs) once measured."""

    label: str
    seqs: range
    phase: Phase
    sends_per_s: float = float("nan")


def fill(row: Row, deliveries: Deliveries) -> None:
    """The row's latencies (every delivery), units (deliveries) and errors (missing ones)."""
    for seq in row.seqs:
        samples = deliveries.samples.get(seq, [])
        row.phase.latencies += [ns for _, ns in samples]
        row.phase.errors += max(0, deliveries.expected - len(samples))
    row.phase.units = len(row.phase.latencies)


async def setup(args, stack: Stack, deliveries: Deliveries, clients: list[Client]) -> Client:
    """Connect the creator and the members, create the group, join it; returns the sender."""
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    say(f"connecting the creator and {args.members} members over {args.gateways} gateways ...")
    sender = await open_client(stack, "creator", 0, None, gate)
    clients.append(sender)
    opened = await asyncio.gather(*(open_client(stack, f"member-{i:04d}", i % args.gateways, deliveries, gate,
                                                None if reads(args, i) else PASSIVE_BUFFER)
                                    for i in range(args.members)), return_exceptions=True)
    clients += [c for c in opened if isinstance(c, Client)]
    failures = [c for c in opened if not isinstance(c, Client)]
    if failures:
        raise RuntimeError(f"{len(failures)} of {args.members} members could not connect: {failures[0]!r}")
    created = await sender.request("create_group", {"group_id": GROUP_ID, "group_type": "public"})
    if created.get("status") != "created":
        raise RuntimeError(f"create_group answered {created}")
    started = time.perf_counter()
    await asyncio.gather(*(join(c, gate) for c in clients[1:]))
    say(f"{args.members} members joined in {time.perf_counter() - started:.1f}s")
    passive = [c for i, c in enumerate(clients[1:]) if not reads(args, i)]
    for client in passive:
        client.stop_reading()
    if passive:
        say(f"{len(passive)} members stopped reading; {deliveries.expected} read and are measured")
    return sender


def reads(args, member: int) -> bool:
    """Does member ``member`` read (and get measured)? All do unless ``--readers`` is given."""
    return args.readers is None or member // args.gateways < args.readers


async def measure(args, stack: Stack, meter: Meter, deliveries: Deliveries, sender: Client) -> list[Row]:
    """The warm-up, then (r1) paced and (r2) flood."""
    say(f"warm-up: {args.warmup} paced messages ...")
    await paced(sender, deliveries, range(args.warmup))
    stack.check_alive()

    r1 = Row("(r1) paced: next send after all deliveries", range(args.warmup, args.warmup + args.messages),
             Phase("paced"))
    say(f"(r1) paced: {args.messages} messages ...")
    meter.begin(r1.phase)
    first = time.perf_counter_ns()
    await paced(sender, deliveries, r1.seqs)
    last = max((deliveries.last[s] for s in r1.seqs if s in deliveries.last), default=first)
    r1.phase.elapsed = (last - first) / 1e9
    meter.end(r1.phase)
    r1.sends_per_s = len(r1.seqs) / r1.phase.elapsed
    stack.check_alive()

    r2 = Row("(r2) flood: next send on the sync reply", range(r1.seqs.stop, r1.seqs.stop + args.flood_messages),
             Phase("flood"))
    say(f"(r2) flood: {args.flood_messages} messages, each on the previous one's sync reply ...")
    meter.begin(r2.phase)
    first, replied, last = await flood(sender, deliveries, r2.seqs)
    r2.phase.elapsed = (last - first) / 1e9
    meter.end(r2.phase)
    r2.sends_per_s = len(r2.seqs) / ((replied - first) / 1e9)
    stack.check_alive()
    for row in (r1, r2):
        fill(row, deliveries)
    return [r1, r2]


async def close_all(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def session(args, stack: Stack, meter: Meter, deliveries: Deliveries) -> list[Row]:
    """Set up, measure, then close every connection (also after an error)."""
    clients: list[Client] = []
    try:
        sender = await setup(args, stack, deliveries, clients)
        stack.check_alive()
        return await measure(args, stack, meter, deliveries, sender)
    finally:
        await asyncio.wait_for(close_all(clients), 30)


# ---------------------------------------------------------------------------- report


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile, ns in, ms out."""
    phase = Phase("p")
    phase.latencies = values
    return phase.percentile(q)


def verdict(value: float, limit: float) -> str:
    return "MET" if value <= limit else "MISSED"


def print_report(args, stack: Stack, rows: list[Row], deliveries: Deliveries, limits: tuple[int, int]) -> None:
    print()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   machine: {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.machine()}")
    print(f"code: {code_version()} in {ROOT}   machine busy before the run: {args.busy_before:.2f} cores"
          + ("  (NOT IDLE: numbers not comparable)" if args.busy_before > 0.15 else ""))
    print(f"gateways: {args.gateways} x genapi gateway --workers 1 --worker-connections {stack.worker_connections} "
          f"(gunicorn -k gevent), no worker; open files: soft {limits[0]}, hard {limits[1]}")
    print(f"clients: the creator (the sender, on gateway 1) and {args.members} members (member i on gateway "
          f"i mod {args.gateways}), one asyncio loop in this process (websockets {websockets_version()}); "
          f"{args.warmup} paced messages of warm-up")
    if args.readers is not None:
        print(f"DIAGNOSTIC --readers {args.readers}: only {deliveries.expected} members read and are measured "
              f"({args.readers} per gateway); the other {args.members - deliveries.expected} stopped reading once "
              f"joined: the gateways still write each frame to all {args.members} (the kernel buffers it), this "
              f"process does not read them; deliveries and deliveries/s count the readers' only")
    print()
    header = (f"{'':{LABEL}} {'members':>7} {'gateways':>8} {'messages':>8} {'deliveries':>10} {'err':>4} "
              f"{'p50 ms':>8} {'p99 ms':>8} {'deliveries/s':>12} {'sends/s':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        phase = row.phase
        print(f"{row.label:{LABEL}} {args.members:>7} {args.gateways:>8} {len(row.seqs):>8} {phase.units:>10} "
              f"{phase.errors:>4} {phase.percentile(50):>8.2f} {phase.percentile(99):>8.2f} "
              f"{phase.throughput:>12.0f} {row.sends_per_s:>8.1f}")
    paced = rows[0].phase
    p99 = paced.percentile(99)
    print()
    if paced.errors:
        print(f"p99 delivery latency (r1): {p99:.2f} ms, but {paced.errors} deliveries lost: targets MISSED")
    else:
        print(f"p99 delivery latency (r1): {p99:.2f} ms   target <= {TARGET_P99_MS:.0f} ms (must): "
              f"{verdict(p99, TARGET_P99_MS)}   <= {AIM_P99_MS:.0f} ms (aim): {verdict(p99, AIM_P99_MS)}")
    print("((r2)'s latencies include the queueing of a flood: the targets apply to (r1))")
    print_breakdown(args, rows, deliveries)
    if deliveries.unexpected:
        print(f"\nunexpected frames: {deliveries.unexpected}, the first: {deliveries.examples}")


def print_breakdown(args, rows: list[Row], deliveries: Deliveries) -> None:
    """Where the time goes: per message, per gateway, CPU per process, Redis per message."""
    print()
    print("Per message: the first and the last member's latency, ms, p50 and p99 over the messages "
          "(last - first: the fan-out)")
    print(f"  {'':{LABEL}} {'first p50':>9} {'first p99':>9} {'last p50':>9} {'last p99':>9}")
    for row in rows:
        firsts, lasts = [], []
        for seq in row.seqs:
            samples = [ns for _, ns in deliveries.samples.get(seq, [])]
            if samples:
                firsts.append(min(samples))
                lasts.append(max(samples))
        print(f"  {row.label:{LABEL}} {percentile(firsts, 50):>9.2f} {percentile(firsts, 99):>9.2f} "
              f"{percentile(lasts, 50):>9.2f} {percentile(lasts, 99):>9.2f}")
    print()
    print("Per gateway, ms over its members' deliveries (the sender is on gateway 1, which also publishes):")
    for row in rows:
        by_gateway: dict[int, list[int]] = defaultdict(list)
        for seq in row.seqs:
            for gateway, ns in deliveries.samples.get(seq, []):
                by_gateway[gateway].append(ns)
        shown = "   ".join(f"gateway {g + 1}: p50 {percentile(v, 50):.2f} p99 {percentile(v, 99):.2f}"
                           for g, v in sorted(by_gateway.items()))
        print(f"  {row.label:{LABEL}} {shown}")
    print()
    components = ["redis"] + [f"gateway {i + 1}" for i in range(args.gateways)] + ["bench client", "other"]
    print(f"  {'CPU, cores busy per wall second':{LABEL}} " + " ".join(f"{c:>12}" for c in components)
          + f" {'client us/delivery':>19}")
    for row in rows:
        phase = row.phase
        cores = [phase.cpu.get(c, 0.0) / phase.elapsed for c in components]
        per = phase.cpu.get("bench client", 0.0) * 1e6 / max(phase.units, 1)
        print(f"  {row.label:{LABEL}} " + " ".join(f"{v:>12.2f}" for v in cores) + f" {per:>19.1f}")
    print(f"  (of {os.cpu_count()} cores; bench client: this process, the {args.members} members' readers and the "
          f"sender; other: the rest of the machine)")
    print()
    print("Redis per message sent (all of Redis in the window):")
    for row in rows:
        n = max(len(row.seqs), 1)
        calls = sorted(row.phase.commands.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v / n:.1f}" for k, v in calls if v / n >= 0.05)
        print(f"  {row.label:{LABEL}} Redis busy {row.phase.redis_usec / n:.0f} us: {shown}")


def write_json(args, rows: list[Row]) -> None:
    """The rows for bench/bench_all.py: per row, deliveries, lost ones and latency percentiles."""
    result = {"members": args.members, "gateways": args.gateways, "rows": {
        row.label: {"messages": len(row.seqs), "deliveries": row.phase.units, "lost": row.phase.errors,
                    "p50_ms": row.phase.percentile(50), "p99_ms": row.phase.percentile(99),
                    "deliveries_per_s": row.phase.throughput, "sends_per_s": row.sends_per_s}
        for row in rows}}
    result["paced"] = result["rows"][rows[0].label]
    args.json.write_text(json.dumps(result, indent=2))


def websockets_version() -> str:
    import websockets

    return websockets.__version__


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="group members, split over the gateways "
                                                                   "(default 1000)")
    parser.add_argument("--gateways", type=int, default=2, help="gateway processes (default 2)")
    parser.add_argument("--messages", type=int, default=200, help="messages of (r1), paced (default 200)")
    parser.add_argument("--flood-messages", type=int, default=None,
                        help="messages of (r2), the flood (default: --messages)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured paced messages first (default 20)")
    parser.add_argument("--worker-connections", type=int, default=WORKER_CONNECTIONS,
                        help=f"the gateways' --worker-connections (default {WORKER_CONNECTIONS})")
    parser.add_argument("--readers", type=int, default=None, metavar="N",
                        help="a diagnostic: only N members per gateway read and are measured; the others stop "
                             "reading once joined (the gateways still write to them, the kernel buffers it), "
                             "so this process's own reading cost leaves the measurement (default: all read)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the rows as JSON to PATH (read by bench/bench_all.py)")
    args = parser.parse_args(argv)
    args.flood_messages = args.messages if args.flood_messages is None else args.flood_messages
    if min(args.members, args.gateways, args.messages, args.flood_messages, args.warmup) < 1:
        parser.error("--members, --gateways, --messages, --flood-messages and --warmup must be positive")
    if args.readers is not None and not 1 <= args.readers <= args.members // args.gateways:
        parser.error("--readers: between 1 and the members per gateway")
    if args.worker_connections < args.members // args.gateways + 100:
        parser.error("--worker-connections must leave room for the members of one gateway (and some)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminated)
    limits = raise_open_files(FDS_PER_MEMBER * args.members + 200)
    workdir = Path(tempfile.mkdtemp(prefix="genapi-bench-relay-"))
    stack = Stack(workdir, args.gateways, args.worker_connections)
    client = None
    failed = True
    try:
        busy = args.busy_before = machine_busy()
        print(f"machine busy before the run: {busy:.2f} of {os.cpu_count()} cores; open files: soft {limits[0]}, "
              f"hard {limits[1]}", flush=True)
        if busy > 0.15:
            print("WARNING: something else is using the CPU; the numbers will not be comparable", flush=True)
        started = time.monotonic()
        stack.start()
        say(f"stack up in {time.monotonic() - started:.1f}s: redis :{stack.redis_port}, gateways "
            f"{', '.join(f':{p}' for p in stack.ports)}, logs in {workdir}")
        client = redis.Redis(port=stack.redis_port)
        meter = Meter(client, stack.groups(), {})
        deliveries = Deliveries(sum(reads(args, i) for i in range(args.members)), args.members)
        rows = asyncio.run(session(args, stack, meter, deliveries))
        say("done; stopping the stack after the report")
        print_report(args, stack, rows, deliveries, limits)
        if args.json is not None:
            write_json(args, rows)
        failed = False
        return 0
    finally:
        # a second Ctrl-C (or a SIGTERM) must not cut the clean-up short: it is bounded
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if client is not None:
            client.close()
        stack.stop()
        if failed or args.keep_logs:
            print(f"process logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

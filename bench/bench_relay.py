#!/usr/bin/env python
"""Relay fan-out benchmark (issue 8): one public group, its members spread over gateway processes.

    python -m bench.bench_relay [--members 1000] [--gateways 2] [--reader-procs 2] [--messages 200]
                                [--flood-messages N]

One fresh ``redis-server`` (free port, temp dir) and ``--gateways`` ``genapi gateway``
processes (gunicorn, one gevent worker each, ``--worker-connections`` above what they hold)
are started; no worker: the ``relay`` service is answered by the gateway. Every process is
stopped by PID at the end, also on Ctrl-C, SIGTERM or an error.

The clients use the ``websockets`` asyncio client, each with a token of its own user
(``member-0000`` ...), signed with the gateways' ``GENAPI_SECRET_KEY``:

- a creator (on the first gateway, in this process) creates a public group, and is the sender;
- ``--members`` members, split evenly over the gateways (member i on gateway i mod G), connect
  and join it. They are read by ``--reader-procs`` N processes, each an asyncio loop holding
  its share: member i belongs to process (i // G) mod N, so every process has members on
  every gateway. The reader processes are forked from this one before its own loop starts;
  over a pipe each they report when all their members have a message, and at the end every
  delivery they recorded. With N = 1 the members are read in this process's own loop, next to
  the sender (what the benchmark did before the option existed).

Reading costs ~30-45 us of CPU per delivery in ``websockets`` (frame parsing and asyncio's
socket reads), 30-45 ms per message of 1000 members: in one loop the last member of a message
reads it that long after the first, whatever the gateways do. Several reader processes read
in parallel, as far as the cores left by the gateways allow (on 2 cores they are all busy:
see docs/performance.md).

Each message is ``{"seq": n, "t": perf_counter_ns()}`` taken right before the send; each
member stamps a relay frame when its ``recv()`` returns. ``time.perf_counter_ns`` is
``CLOCK_MONOTONIC`` on Linux, one clock for the whole system, so a stamp taken in a reader
process compares with the sender's. A delivery's latency is receive time - send time;
latencies are pooled over all deliveries.

(r1) paced: ``--messages`` messages, one at a time; the next is sent when every member (in
     every reader process) has received the previous one (or after a timeout, which counts
     the missing ones as errors);
(r2) flood: ``--flood-messages`` messages, each sent as soon as the previous one's sync
     reply came back; deliveries/s over the time from the first send to the last delivery,
     sends/s over the time from the first send to the last sync reply.

``--warmup`` paced messages go first, unmeasured. The report prints p50 and p99 of each row
against the targets of the issue (p99 of (r1) <= 100 ms must, <= 30 ms aim), and where the
time goes: the first and the last member's latency of each message (their gap is the
fan-out: the gateways handing the frame to each socket, and the readers reading them), per
gateway, the CPU each process spends (the bench client is this process and its reader
processes: their reading is part of what is measured) and the Redis commands per message.

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
import multiprocessing
import os
import platform
import resource
import signal
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
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
READER_PROCS = 2  # processes reading the members: the cores of the machine the targets were set on
CONNECT_AT_ONCE = 50  # WebSocket handshakes (and joins) in flight at a time, over all reader processes
REPLY_TIMEOUT = 10.0  # seconds for one sync reply
DELIVERY_TIMEOUT = 10.0  # seconds for every member to receive one paced message
FLOOD_TIMEOUT = 120.0  # seconds for every delivery of the flood after its last send
SETUP_TIMEOUT = 180.0  # seconds for the reader processes to connect (or join) all their members
REPORT_TIMEOUT = 60.0  # seconds for the reader processes to send their samples
STOP_TIMEOUT = 30.0  # seconds for the reader processes to close their members and end
LABEL = 44  # width of the row labels
FDS_PER_MEMBER = 2  # this process's socket, and some slack for the gateways' (they inherit the limit)
PASSIVE_BUFFER = 4 << 20  # --readers: SO_RCVBUF of a member that stops reading (the kernel caps it at rmem_max)
READER_GROUP = "bench reader "  # prefix of the reader processes' names in the CPU meter


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


def ws_url(port: int, user: str) -> str:
    """The WebSocket URL of the gateway on ``port``, with a token of ``user``."""
    return f"ws://127.0.0.1:{port}/ws?token={mint_token(SECRET, user, [])}"


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
        caller = WsCaller(ws_url(port, "bench-probe"), "gateway", None, ping=True)
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

# ---------------------------------------------------------------------------- the clients


class Inbox:
    """What the members of one loop received: (gateway index, latency ns) per message seq;
    ``on_complete(seq)`` is called once all ``expected`` members (the readers) have a message."""

    def __init__(self, expected: int, on_complete: Callable[[int], None]) -> None:
        self.expected = expected
        self.on_complete = on_complete
        self.samples: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.unexpected = 0  # frames that are neither a sync reply nor a relay frame of the bench
        self.examples: list[str] = []  # the first few of them

    def record(self, message: dict, gateway: int, received_ns: int) -> None:
        samples = self.samples[message["seq"]]
        samples.append((gateway, received_ns - message["t"]))
        if len(samples) == self.expected:
            self.on_complete(message["seq"])

    def odd(self, text: str) -> None:
        self.unexpected += 1
        if len(self.examples) < 3:
            self.examples.append(text[:300])

    def report(self) -> dict:
        """Everything recorded, for :meth:`Deliveries.merge` (picklable)."""
        return {"samples": dict(self.samples), "unexpected": self.unexpected, "examples": self.examples}


class Client:
    """One WebSocket connection with its own user; :meth:`request` is a sync call on it
    (request ids are unique per connection), relay frames go to ``inbox``."""

    def __init__(self, user: str, gateway: int, ws: ClientConnection, inbox: Inbox | None) -> None:
        self.user = user
        self.gateway = gateway
        self.ws = ws
        self.inbox = inbox
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
                if self.inbox is not None:
                    self.inbox.record(message, self.gateway, now)
            elif self.inbox is not None:
                self.inbox.odd(text)

    def start(self) -> None:
        self.reader = asyncio.create_task(self.read(), name=f"reader-{self.user}")

    def stop_reading(self) -> None:
        """Read nothing more: what the gateway sends waits in the kernel's buffers."""
        self.inbox = None
        self.ws.transport.pause_reading()

    async def close(self) -> None:
        self.ws.transport.resume_reading()  # a passive member drains (unrecorded), then the close handshake
        await self.ws.close()
        if self.reader is not None:
            try:
                await asyncio.wait_for(self.reader, 5)
            except (TimeoutError, asyncio.CancelledError, Exception):
                pass


async def open_client(port: int, user: str, gateway: int, inbox: Inbox | None,
                      gate: asyncio.Semaphore, buffer: int | None = None) -> Client:
    """A client connected to the gateway on ``port``, its reader started; ``buffer``: the
    socket's SO_RCVBUF (set before the connect, so the TCP window follows)."""
    async with gate:
        sock = None
        if buffer is not None:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        ws = await connect(ws_url(port, user), compression=None, max_size=None,
                           open_timeout=60, ping_interval=None, proxy=None, sock=sock)
    client = Client(user, gateway, ws, inbox)
    client.start()
    return client


async def join(client: Client, gate: asyncio.Semaphore) -> None:
    async with gate:
        result = await client.request("join_group", {"group_id": GROUP_ID})
    if result.get("status") != "active":
        raise RuntimeError(f"{client.user}: join_group answered {result}")


async def close_all(clients: list[Client]) -> None:
    """Close every client at once (errors ignored)."""
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


# ---------------------------------------------------------------------------- the members' loops


@dataclass
class Share:
    """The members one loop holds: (member index, gateway index, reads and is measured) each;
    the gateways' ports; how many handshakes (and joins) it keeps in flight."""

    members: list[tuple[int, int, bool]]
    ports: list[int]
    at_once: int

    @property
    def readers(self) -> int:
        """How many of its members read (and are measured)."""
        return sum(reads for _, _, reads in self.members)


def reads(args, member: int) -> bool:
    """Does member ``member`` read (and get measured)? All do unless ``--readers`` is given."""
    return args.readers is None or member // args.gateways < args.readers


def split(args, ports: list[int]) -> list[Share]:
    """The members over ``--reader-procs`` loops: member i in loop (i // gateways) mod N."""
    count = args.reader_procs
    shares = [Share([], ports, max(1, CONNECT_AT_ONCE // count)) for _ in range(count)]
    for i in range(args.members):
        shares[(i // args.gateways) % count].members.append((i, i % args.gateways, reads(args, i)))
    return shares


class MemberSet:
    """One share of the members in the running loop: connected, joined, read until closed."""

    def __init__(self, share: Share, on_complete: Callable[[int], None]) -> None:
        self.share = share
        self.inbox = Inbox(share.readers, on_complete)
        self.clients: list[Client] = []
        self.gate = asyncio.Semaphore(share.at_once)

    async def connect(self) -> None:
        """Every member connected (the passive ones with a large receive buffer), or RuntimeError."""
        opened = await asyncio.gather(*(open_client(self.share.ports[gateway], f"member-{i:04d}", gateway,
                                                    self.inbox, self.gate, None if active else PASSIVE_BUFFER)
                                        for i, gateway, active in self.share.members), return_exceptions=True)
        self.clients = [c for c in opened if isinstance(c, Client)]
        failures = [c for c in opened if not isinstance(c, Client)]
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(opened)} members could not connect: {failures[0]!r}")

    async def join(self) -> None:
        """Every member joined; then the passive ones stop reading."""
        await asyncio.gather(*(join(c, self.gate) for c in self.clients))
        for client, (_, _, active) in zip(self.clients, self.share.members, strict=True):
            if not active:
                client.stop_reading()

    async def close(self) -> None:
        """Close every member, within STOP_TIMEOUT."""
        try:
            await asyncio.wait_for(close_all(self.clients), STOP_TIMEOUT)
        except TimeoutError:
            pass


def reader_main(conn: Connection, share: Share, foreign: list[int]) -> None:
    """A reader process (forked): its members connect, join when told, read, send back their
    samples when asked; told to stop, or at the end of the pipe (the main process died), it
    closes them and ends. ``foreign``: the inherited main-process ends of the pipes (its own
    included), closed here so that a pipe ends when the main process does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setpgid(0, 0)  # a process group of its own: the CPU meter counts it by group
    for fd in foreign:
        os.close(fd)
    raise_open_files(FDS_PER_MEMBER * len(share.members) + 100)
    try:
        asyncio.run(serve(conn, share))
    finally:
        conn.close()


async def serve(conn: Connection, share: Share) -> None:
    """The reader process's loop: ("connected", n), then on ("join",) ("joined",), then on
    ("report",) ("report", samples); ("done", seq) whenever all its readers have a message,
    ("error", text) if anything fails. ("stop",) or the pipe's end cancels it at any point."""
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue()
    work = asyncio.current_task()

    def readable() -> None:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            command = ("stop",)
        if command[0] == "stop":
            loop.remove_reader(conn.fileno())
            work.cancel()
        else:
            commands.put_nowait(command)

    loop.add_reader(conn.fileno(), readable)
    members = MemberSet(share, lambda seq: conn.send(("done", seq)))
    try:
        await members.connect()
        conn.send(("connected", len(members.clients)))
        if (await commands.get())[0] == "join":
            await members.join()
            conn.send(("joined",))
        if (await commands.get())[0] == "report":
            conn.send(("report", members.inbox.report()))
        await asyncio.Event().wait()  # until ("stop",)
    except asyncio.CancelledError:
        pass
    except Exception as error:
        try:
            conn.send(("error", f"{type(error).__name__}: {error}"))
        except OSError:
            pass
    finally:
        await members.close()


class LocalReaders:
    """``--reader-procs 1``: the members in this process's loop, next to the sender."""

    def __init__(self, shares: list[Share]) -> None:
        self.shares = shares
        self.members: MemberSet | None = None

    def start(self) -> None:
        """Nothing to start: the members connect in :meth:`open`."""

    def groups(self) -> dict[str, int]:
        """No process of its own: this process's CPU is the bench client's already."""
        return {}

    async def open(self, deliveries: Deliveries) -> None:
        """Connect every member; a message complete goes straight to ``deliveries``."""
        self.members = MemberSet(self.shares[0], deliveries.completed)
        await self.members.connect()

    async def join(self) -> None:
        """Every member joined (the passive ones then stop reading)."""
        await self.members.join()

    async def reports(self) -> list[dict]:
        """What the members recorded."""
        return [self.members.inbox.report()]

    async def close(self) -> None:
        """Close every member."""
        if self.members is not None:
            await self.members.close()

    def stop(self) -> None:
        """Nothing left to stop: :meth:`close` closed the members."""


class ReaderProcs:
    """One forked process per share (:func:`reader_main`), talked to over a pipe each. Start
    them before this process's loop runs; :meth:`stop` ends them all (idempotent)."""

    def __init__(self, shares: list[Share]) -> None:
        self.shares = shares
        self.context = multiprocessing.get_context("fork")
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.Process] = []
        self.queues: list[asyncio.Queue] = []

    def start(self) -> None:
        """Fork the processes (each leads a process group of its own); their members start connecting."""
        sys.stdout.flush()  # a forked child must not write this process's buffered output again
        sys.stderr.flush()
        for k, share in enumerate(self.shares):
            parent, child = self.context.Pipe()
            self.conns.append(parent)
            foreign = [c.fileno() for c in self.conns]  # its own pipe's parent end too
            process = self.context.Process(target=reader_main, args=(child, share, foreign),
                                           name=f"bench-reader-{k + 1}", daemon=True)
            self.procs.append(process)
            process.start()
            child.close()
            try:
                os.setpgid(process.pid, process.pid)  # also here: no window where the meter misses it
            except OSError:
                pass  # it has already done so (or died: the pipe will tell)

    def groups(self) -> dict[str, int]:
        """The reader processes for the CPU meter: process group ids (each leads its own)."""
        return {f"{READER_GROUP}{k + 1}": p.pid for k, p in enumerate(self.procs)}

    async def open(self, deliveries: Deliveries) -> None:
        """Route the pipes into this loop ("done" to ``deliveries``), wait until every member is connected."""
        loop = asyncio.get_running_loop()
        self.queues = [asyncio.Queue() for _ in self.conns]
        for k, conn in enumerate(self.conns):
            loop.add_reader(conn.fileno(), self._readable, k, deliveries)
        await self._collect("connected", SETUP_TIMEOUT)

    def _readable(self, k: int, deliveries: Deliveries) -> None:
        conn = self.conns[k]
        try:
            while conn.poll():
                message = conn.recv()
                if message[0] == "done":
                    deliveries.completed(message[1])
                else:
                    self.queues[k].put_nowait(message)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            self.queues[k].put_nowait(("ended",))

    async def _collect(self, kind: str, timeout: float) -> list[tuple]:
        """The next message of every process, each of ``kind``; RuntimeError otherwise."""
        deadline = time.monotonic() + timeout
        messages = []
        for k, queue in enumerate(self.queues):
            try:
                message = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise RuntimeError(f"reader process {k + 1}: no '{kind}' within {timeout:.0f} s") from None
            if message[0] == "error":
                raise RuntimeError(f"reader process {k + 1}: {message[1]}")
            if message[0] != kind:
                self.procs[k].join(5)
                raise RuntimeError(f"reader process {k + 1} ended (exit code {self.procs[k].exitcode})")
            messages.append(message)
        return messages

    def _command(self, *message) -> None:
        for conn in self.conns:
            try:
                conn.send(message)
            except OSError:
                pass  # that process has ended (its "ended" tells), or the pipe is closed

    async def join(self) -> None:
        """Every process's members joined (the passive ones then stop reading)."""
        self._command("join")
        await self._collect("joined", SETUP_TIMEOUT)

    async def reports(self) -> list[dict]:
        """What every process's members recorded."""
        self._command("report")
        return [message[1] for message in await self._collect("report", REPORT_TIMEOUT)]

    async def close(self) -> None:
        """The members are closed by :meth:`stop`, after this process's loop."""

    def stop(self) -> None:
        """Tell every process to close its members and end; terminate, then kill, what does not."""
        self._command("stop")
        deadline = time.monotonic() + STOP_TIMEOUT
        started = [p for p in self.procs if p.pid is not None]
        for process in started:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in started:
            if process.is_alive():
                process.terminate()
                process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        for conn in self.conns:
            conn.close()


def readers_for(args, ports: list[int]) -> LocalReaders | ReaderProcs:
    """The members' readers that ``--reader-procs`` asks for."""
    shares = split(args, ports)
    return LocalReaders(shares) if args.reader_procs == 1 else ReaderProcs(shares)


# ---------------------------------------------------------------------------- the phases


class Deliveries:
    """This process's view of the deliveries: an event per message seq, set when every member
    set with readers has reported it complete; the send stamps; after the run, every set's
    samples, merged: (gateway index, latency ns) per seq. ``expected``: the members that read,
    ``recipients``: what a send's sync reply counts (the members and the creator)."""

    def __init__(self, shares: list[Share], members: int) -> None:
        self.expected = sum(share.readers for share in shares)
        self.sources = sum(1 for share in shares if share.readers)
        self.recipients = members + 1
        self.complete: dict[int, int] = defaultdict(int)
        self.done: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.sent: dict[int, int] = {}  # seq -> perf_counter_ns stamped into the message
        self.samples: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.unexpected = 0
        self.examples: list[str] = []

    def completed(self, seq: int) -> None:
        """One member set has all its readers' copies of message ``seq``."""
        self.complete[seq] += 1
        if self.complete[seq] == self.sources:
            self.done[seq].set()

    def merge(self, report: dict) -> None:
        for seq, samples in report["samples"].items():
            self.samples[seq] += samples
        self.unexpected += report["unexpected"]
        self.examples = (self.examples + report["examples"])[:3]

    def last(self, seqs: range, default: int) -> int:
        """perf_counter_ns of the last delivery of these messages (send stamp + latency)."""
        return max((self.sent[s] + ns for s in seqs for _, ns in self.samples.get(s, ())), default=default)


async def send(sender: Client, deliveries: Deliveries, seq: int) -> None:
    """One message stamped with the send time; checks the sync reply."""
    stamp = deliveries.sent[seq] = time.perf_counter_ns()
    result = await sender.request("send", {"group_id": GROUP_ID, "message": {"seq": seq, "t": stamp}})
    if result.get("status") != "relayed" or result.get("recipients_count") != deliveries.recipients:
        raise RuntimeError(f"send {seq}: unexpected sync result {result} "
                           f"(expected {deliveries.recipients} recipients)")


async def paced(sender: Client, deliveries: Deliveries, seqs: range) -> None:
    """One message at a time: the next after every member received this one (or the timeout)."""
    for seq in seqs:
        await send(sender, deliveries, seq)
        try:
            await asyncio.wait_for(deliveries.done[seq].wait(), DELIVERY_TIMEOUT)
        except TimeoutError:
            pass  # the missing deliveries count as errors


async def flood(sender: Client, deliveries: Deliveries, seqs: range) -> int:
    """Each message right after the previous one's sync reply; returns the last sync reply's
    perf_counter_ns. Returns after every member has them all, or the timeout."""
    for seq in seqs:
        await send(sender, deliveries, seq)
    replied = time.perf_counter_ns()
    try:
        await asyncio.wait_for(asyncio.gather(*(deliveries.done[s].wait() for s in seqs)), FLOOD_TIMEOUT)
    except TimeoutError:
        pass
    return replied


@dataclass
class Row:
    """One measured row: its messages (seqs), and its phase (latencies, costs) once measured;
    ``first``: perf_counter_ns before its first send; ``replied``: after its last sync reply
    (the flood; None for paced, whose sends/s spans the whole window)."""

    label: str
    seqs: range
    phase: Phase
    first: int = 0
    replied: int | None = None
    sends_per_s: float = float("nan")


def fill(row: Row, deliveries: Deliveries) -> None:
    """Once the samples are merged: the row's latencies (every delivery), units (deliveries),
    errors (missing ones), and its window (first send to last delivery)."""
    for seq in row.seqs:
        samples = deliveries.samples.get(seq, [])
        row.phase.latencies += [ns for _, ns in samples]
        row.phase.errors += max(0, deliveries.expected - len(samples))
    row.phase.units = len(row.phase.latencies)
    end = row.first if row.replied is None else row.replied
    row.phase.elapsed = max(deliveries.last(row.seqs, end) - row.first, 1) / 1e9
    sending = row.phase.elapsed if row.replied is None else max(row.replied - row.first, 1) / 1e9
    row.sends_per_s = len(row.seqs) / sending


def fold_readers(phase: Phase) -> None:
    """Count the reader processes' CPU as the bench client's (and keep their part apart)."""
    names = [name for name in phase.cpu if name.startswith(READER_GROUP)]
    phase.cpu["bench readers"] = sum(phase.cpu.pop(name) for name in names)
    phase.cpu["bench client"] = phase.cpu.get("bench client", 0.0) + phase.cpu["bench readers"]


async def setup(args, stack: Stack, readers, deliveries: Deliveries, clients: list[Client]) -> Client:
    """Connect the creator, create the group, wait for the members to connect, join them;
    returns the sender."""
    procs = "this process" if args.reader_procs == 1 else f"{args.reader_procs} reader processes"
    say(f"connecting the creator and {args.members} members ({procs}) over {args.gateways} gateways ...")
    sender = await open_client(stack.ports[0], "creator", 0, None, asyncio.Semaphore(1))
    clients.append(sender)
    created = await sender.request("create_group", {"group_id": GROUP_ID, "group_type": "public"})
    if created.get("status") != "created":
        raise RuntimeError(f"create_group answered {created}")
    await readers.open(deliveries)
    started = time.perf_counter()
    await readers.join()
    say(f"{args.members} members joined in {time.perf_counter() - started:.1f}s")
    if deliveries.expected < args.members:
        say(f"{args.members - deliveries.expected} members stopped reading; {deliveries.expected} read "
            f"and are measured")
    return sender


async def measure(args, stack: Stack, meter: Meter, deliveries: Deliveries, sender: Client) -> list[Row]:
    """The warm-up, then (r1) paced and (r2) flood (their samples are filled in later)."""
    say(f"warm-up: {args.warmup} paced messages ...")
    await paced(sender, deliveries, range(args.warmup))
    stack.check_alive()

    r1 = Row("(r1) paced: next send after all deliveries", range(args.warmup, args.warmup + args.messages),
             Phase("paced"))
    say(f"(r1) paced: {args.messages} messages ...")
    meter.begin(r1.phase)
    r1.first = time.perf_counter_ns()
    await paced(sender, deliveries, r1.seqs)
    meter.end(r1.phase)
    fold_readers(r1.phase)
    stack.check_alive()

    r2 = Row("(r2) flood: next send on the sync reply", range(r1.seqs.stop, r1.seqs.stop + args.flood_messages),
             Phase("flood"))
    say(f"(r2) flood: {args.flood_messages} messages, each on the previous one's sync reply ...")
    meter.begin(r2.phase)
    r2.first = time.perf_counter_ns()
    r2.replied = await flood(sender, deliveries, r2.seqs)
    meter.end(r2.phase)
    fold_readers(r2.phase)
    stack.check_alive()
    return [r1, r2]


async def session(args, stack: Stack, meter: Meter, readers) -> tuple[list[Row], Deliveries]:
    """Set up, measure, collect every sample, then close every connection (also after an error)."""
    deliveries = Deliveries(readers.shares, args.members)
    clients: list[Client] = []
    try:
        sender = await setup(args, stack, readers, deliveries, clients)
        stack.check_alive()
        rows = await measure(args, stack, meter, deliveries, sender)
        for report in await readers.reports():
            deliveries.merge(report)
        for row in rows:
            fill(row, deliveries)
        return rows, deliveries
    finally:
        await readers.close()
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
    """The rows against the targets, then where the time goes."""
    print()
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC   machine: {platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.machine()}")
    print(f"code: {code_version()} in {ROOT}   machine busy before the run: {args.busy_before:.2f} cores"
          + ("  (NOT IDLE: numbers not comparable)" if args.busy_before > 0.15 else ""))
    print(f"gateways: {args.gateways} x genapi gateway --workers 1 --worker-connections {stack.worker_connections} "
          f"(gunicorn -k gevent), no worker; open files: soft {limits[0]}, hard {limits[1]}")
    print(f"clients: the creator (the sender, on gateway 1, in this process) and {args.members} members (member i "
          f"on gateway i mod {args.gateways}), {describe_readers(args)} (websockets {websockets_version()}); "
          f"{args.warmup} paced messages of warm-up")
    if args.readers is not None:
        print(f"DIAGNOSTIC --readers {args.readers}: only {deliveries.expected} members read and are measured "
              f"({args.readers} per gateway); the other {args.members - deliveries.expected} stopped reading once "
              f"joined: the gateways still write each frame to all {args.members} (the kernel buffers it), the "
              f"bench does not read them; deliveries and deliveries/s count the readers' only")
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


def describe_readers(args) -> str:
    """Where the members are read, for the report."""
    if args.reader_procs == 1:
        return "read in one asyncio loop in this process, next to the sender"
    return (f"read by {args.reader_procs} reader processes, an asyncio loop each (member i in process "
            f"(i // {args.gateways}) mod {args.reader_procs})")


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
    readers = "   ".join(f"{row.label[:4]} {row.phase.cpu.get('bench readers', 0.0) / row.phase.elapsed:.2f}"
                           for row in rows)
    print(f"  (of {os.cpu_count()} cores; bench client: this process (the sender) and the {args.members} members' "
          f"readers, {describe_readers(args)}; other: the rest of the machine)")
    if args.reader_procs > 1:
        print(f"  (of the bench client, the reader processes: {readers} cores)")
    print()
    print("Redis per message sent (all of Redis in the window):")
    for row in rows:
        n = max(len(row.seqs), 1)
        calls = sorted(row.phase.commands.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k} {v / n:.1f}" for k, v in calls if v / n >= 0.05)
        print(f"  {row.label:{LABEL}} Redis busy {row.phase.redis_usec / n:.0f} us: {shown}")


def write_json(args, rows: list[Row]) -> None:
    """The rows for bench/bench_all.py: per row, deliveries, lost ones and latency percentiles."""
    result = {"members": args.members, "gateways": args.gateways, "reader_procs": args.reader_procs, "rows": {
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


EPILOG = ("Rows: (r1) paced, the next message once every member has the previous one (the targets: p99 <= "
          f"{TARGET_P99_MS:.0f} ms must, <= {AIM_P99_MS:.0f} ms aim); (r2) flood, the next on the previous one's sync "
          "reply. A latency is a member's recv() time minus the sender's perf_counter_ns() stamp (CLOCK_MONOTONIC, "
          "comparable across the reader processes). The CPU table counts this process and its reader processes "
          "as the bench client.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=EPILOG)
    parser.add_argument("--members", type=int, default=1000, help="group members, split over the gateways "
                                                                   "(default 1000)")
    parser.add_argument("--gateways", type=int, default=2, help="gateway processes (default 2)")
    parser.add_argument("--messages", type=int, default=200, help="messages of (r1), paced (default 200)")
    parser.add_argument("--flood-messages", type=int, default=None,
                        help="messages of (r2), the flood (default: --messages)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured paced messages first (default 20)")
    parser.add_argument("--worker-connections", type=int, default=WORKER_CONNECTIONS,
                        help=f"the gateways' --worker-connections (default {WORKER_CONNECTIONS})")
    parser.add_argument("--reader-procs", type=int, default=READER_PROCS, metavar="N",
                        help="processes that read the members, an asyncio loop each with its share (member i in "
                             "process (i // gateways) mod N, so each has members on every gateway), forked from "
                             "this one; the sender stays here. 1: the members are read in this process's own "
                             f"loop, next to the sender, as before the option (default {READER_PROCS}: the cores of "
                             "the machine the targets were set on)")
    parser.add_argument("--readers", type=int, default=None, metavar="N",
                        help="a diagnostic: only N members per gateway read and are measured; the others stop "
                             "reading once joined (the gateways still write to them, the kernel buffers it), "
                             "so the bench's own reading cost leaves the measurement (default: all read)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the process logs")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the rows as JSON to PATH (read by bench/bench_all.py)")
    args = parser.parse_args(argv)
    args.flood_messages = args.messages if args.flood_messages is None else args.flood_messages
    if min(args.members, args.gateways, args.messages, args.flood_messages, args.warmup) < 1:
        parser.error("--members, --gateways, --messages, --flood-messages and --warmup must be positive")
    if not 1 <= args.reader_procs or args.reader_procs * args.gateways > args.members:
        parser.error("--reader-procs: at least 1, and at most members / gateways (each has members on every gateway)")
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
    client = readers = None
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
        readers = readers_for(args, stack.ports)
        readers.start()  # forked before this process's loop (and any thread) exists
        client = redis.Redis(port=stack.redis_port)
        meter = Meter(client, stack.groups() | readers.groups(), {})
        rows, deliveries = asyncio.run(session(args, stack, meter, readers))
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
        if readers is not None:
            readers.stop()
        stack.finish(failed or args.keep_logs)


if __name__ == "__main__":
    sys.exit(main())

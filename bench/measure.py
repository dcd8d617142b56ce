"""Measurements for the benchmarks: one phase's latencies and costs, and the meter around a
timed window (CPU per process group from ``/proc``, Redis ``INFO commandstats``, a queue's
length, optional py-spy profiles)."""

from __future__ import annotations

import math
import os
import resource
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

CLK_TCK = os.sysconf("SC_CLK_TCK")


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
    queue_depth: list[int] = field(default_factory=list)  # samples of the length of the queue the calls go through
    units: int = 0  # what the costs are per when not calls: the chunks of a stream phase
    nbytes: int = 0  # a stream phase's payload bytes received
    firsts: list[float] = field(default_factory=list)  # a stream phase: seconds until the first chunk, per stream
    rates: list[float] = field(default_factory=list)  # a stream phase: chunks/s of each stream
    notes: list[str] = field(default_factory=list)  # what went wrong (the first few)

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
        self.units += other.units
        self.nbytes += other.nbytes
        self.firsts += other.firsts
        self.rates += other.rates
        self.notes += other.notes

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
    def per(self) -> int:
        """What costs are divided by: the units (stream chunks) if counted, else the calls."""
        return self.units or self.count

    @property
    def throughput(self) -> float:
        return self.per / self.elapsed if self.elapsed else float("nan")


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
    """Around a timed window: CPU per process, Redis command counters, the length of the
    queue the phase's calls go through (sampled every 20 ms by a thread of its own), and
    optionally py-spy profiles.

    ``queues`` maps a phase name to (a client on the queue's Redis database, the queue's name).
    """

    def __init__(self, client: redis.Redis, groups: dict[str, int],
                 queues: dict[str, tuple[redis.Redis, str]], profiler: Profiler | None = None) -> None:
        self.client = client
        self.groups = groups  # component -> process group id
        self.queues = queues
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
        if phase.name not in self.queues:
            return
        client, queue = self.queues[phase.name]
        while self._sampling.is_set():
            phase.queue_depth.append(client.llen(queue))
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

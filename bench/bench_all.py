#!/usr/bin/env python
"""Issue 11's benchmark: every target of the performance issue, in one run, one table, one plot.

    python bench/bench_all.py [--plot docs/performance.png] [--out DIR] [--skip NAME ...]
                              [--sync-arg=--pin ...]

It runs, one after the other (each starts and stops its own processes, by PID):

- ``bench/bench_sync.py``: the floors (Redis ``PING``, plain Celery as a user runs it), the
  gateway with its defaults, the gateway with a global rate limit and breakers on, the
  scale-out rows (200 clients, ``genapi gateway --workers 1`` and ``--workers 2``), the stream
  row (1 KB chunks through one stream) and the other mode rows;
- ``bench/bench_relay.py``: a relay group of 1000 members over two gateway processes;
- ``bench/bench_idle.py``: 10,000 idle authenticated sockets on one gateway process, then as
  many as its open-files limit allows;
- ``bench/bench_overload.py``: 1000 clients calling as fast as they can for 30 s.

Each script's own report is printed as it runs; then this script prints the table of the
targets (value, must, aim, MET/MISSED), the scale-out and overload rows, and draws the plot
(``--plot``, a PNG: latency percentiles per row, and throughput against the number of
callers). ``--skip sync|relay|idle|overload`` leaves one out (its rows show as not run).
Exit status 0 when every "must" that ran is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"sync": "bench_sync.py", "relay": "bench_relay.py", "idle": "bench_idle.py",
           "overload": "bench_overload.py"}
#: what bench_all adds to each script's command line (beyond --json)
DEFAULT_ARGS = {"sync": ["--no-old-floor"], "relay": [], "idle": [], "overload": []}


@dataclass
class Target:
    """One row of the issue's table: how to read its value, and its must and aim."""

    label: str
    unit: str
    must: float
    aim: float
    higher_is_better: bool

    def verdict(self, value: float | None, limit: float) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "not run"
        ok = value >= limit if self.higher_is_better else value <= limit
        return "MET" if ok else "MISSED"


TARGETS = {
    "ratio_p50": Target("ratio_p50, defaults", "", 1.2, 1.0, False),
    "ratio_tput": Target("ratio_tput, 50 clients, defaults", "", 1.0, 1.2, True),
    "ratio_p50_policies": Target("ratio_p50, rate limit + breakers on", "", 1.3, 1.1, False),
    "idle_kb": Target("idle WebSockets, KB each at 10,000", "KB", 50, 30, False),
    "stream": Target("stream chunks/s, one stream, 1 KB chunks", "/s", 5000, 20000, True),
    "relay_p99": Target("relay fan-out, 1000 members, 2 gateways, p99", "ms", 100, 30, False),
}


def run_script(name: str, out: Path, extra: list[str]) -> dict | None:
    """Run one benchmark script with ``--json``; its parsed results, or None if it failed."""
    path = out / f"{name}.json"
    argv = [sys.executable, str(ROOT / "bench" / SCRIPTS[name]), "--json", str(path), *DEFAULT_ARGS[name], *extra]
    print(f"\n=== {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    code = subprocess.call(argv, cwd=ROOT)
    print(f"=== {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
    if code != 0 or not path.exists():
        return None
    return json.loads(path.read_text())


def values(results: dict[str, dict | None]) -> dict[str, float | None]:
    """The value of each target from the scripts' results (None where a script did not run)."""
    sync, relay, idle = results.get("sync"), results.get("relay"), results.get("idle")
    found: dict[str, float | None] = dict.fromkeys(TARGETS)
    if sync:
        for key in ("ratio_p50", "ratio_tput", "ratio_p50_policies"):
            found[key] = sync["ratios"].get(key)
        if "stream" in sync and not sync["stream"]["errors"]:
            found["stream"] = sync["stream"]["chunks_per_s"]
    if idle:
        found["idle_kb"] = idle["phases"]["10k"]["kb_per_socket"]
    if relay and not relay["paced"]["lost"]:
        found["relay_p99"] = relay["paced"]["p99_ms"]
    return found


def print_table(results: dict[str, dict | None]) -> bool:
    """The issue's table with this run's values; True when every must that ran is met."""
    found = values(results)
    print()
    print(f"{'issue 11 target':48} {'value':>10} {'must':>16} {'aim':>16}")
    print("-" * 94)
    all_met = True
    for key, target in TARGETS.items():
        value = found[key]
        sign = ">=" if target.higher_is_better else "<="
        must, aim = target.verdict(value, target.must), target.verdict(value, target.aim)
        all_met &= must != "MISSED"
        shown = "-" if value is None else (f"{value:.2f}" if value < 100 else f"{value:,.0f}") + target.unit
        print(f"{target.label:48} {shown:>10} {sign} {target.must:<6g}{must:>7} "
              f"{sign} {target.aim:<6g}{aim:>7}")
    print_extra(results)
    return all_met


def print_extra(results: dict[str, dict | None]) -> None:
    """The rows of the issue's "also deliver" list: scale-out, idle maximum, overload."""
    sync, idle, overload = results.get("sync"), results.get("idle"), results.get("overload")
    print()
    if sync and "ratio_tput_policies" in sync["ratios"]:
        print(f"ratio_tput, rate limit + breakers on: {sync['ratios']['ratio_tput_policies']:.2f} "
              f"(no target; the defaults' must is >= 1.0)")
    if sync and "w1_scale" in sync["rows"]:
        rows, n = sync["rows"], sync["scale_clients"]
        print(f"scale-out, {n} clients: plain Celery {rows['b_scale']['calls_per_s']:.0f} calls/s, "
              f"gateway --workers 1 {rows['w1_scale']['calls_per_s']:.0f}, --workers 2 "
              f"{rows['w2_scale']['calls_per_s']:.0f} (x{sync['ratios']['scale_w2_over_w1']:.2f})")
    if idle:
        for phase, row in idle["phases"].items():
            print(f"idle sockets ({phase}): {row['sockets']:,} sockets, {row['kb_per_socket']:.1f} KB each, "
                  f"{row['connect_per_s']:,.0f} connections/s, {row['ping_failures']} failed pings "
                  f"(open files soft {row['nofile_soft']}, hard {row['nofile_hard']})")
    if overload:
        print(f"overload: {overload['clients']} clients for {overload['seconds']:.0f} s: {overload['ok']:,} ok, "
              f"{overload['refused']:,} refused, {overload['other_errors']} other errors, "
              f"{overload['missing']} missing, {overload['duplicates']} duplicates; gateway/ping p99 "
              f"{overload['ping_p99_ms']:.1f} ms (must < 100); peak RSS gateway "
              f"{overload['gateway_peak_rss_kb'] / 1024:.0f} MB, worker {overload['worker_peak_rss_kb'] / 1024:.0f} MB")
    for name, result in results.items():
        if result is None:
            print(f"{name}: did not run or failed (see its output above)")


def plot(results: dict[str, dict | None], path: Path) -> None:
    """Two panels: p50/p99 per sequential row (log scale), and calls/s against callers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sync = results.get("sync")
    if not sync:
        print("plot: skipped (bench_sync did not run)")
        return
    rows = sync["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    latency_rows = [("Redis PING", "ping"), ("gateway ping\n(WebSocket only)", "ws_ping"),
                    ("plain Celery\napply_async().get()", "b_seq"), ("gateway\ndefaults", "c_seq"),
                    ("gateway, rate limit\n+ breakers", "p_seq")]
    latency_rows = [(label, rows[key]) for label, key in latency_rows if key in rows]
    xs = range(len(latency_rows))
    width = 0.27
    for offset, (pct, colour) in zip((-width, 0, width), (("p50", "#4c72b0"), ("p90", "#8172b2"),
                                                           ("p99", "#c44e52")), strict=True):
        heights = [row[f"{pct}_ms"] for _, row in latency_rows]
        bars = left.bar([x + offset for x in xs], heights, width, label=pct, color=colour)
        left.bar_label(bars, labels=[f"{h:.2f}" for h in heights], fontsize=7, padding=1)
    left.set_xticks(list(xs), [label for label, _ in latency_rows], fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("ms per call, sequential (log scale)")
    left.set_title("Latency of one call at a time")
    left.legend()

    series = {"plain Celery (solo worker)": [(1, "b_seq"), (sync["clients"], "b_conc"),
                                             (sync["scale_clients"], "b_scale")],
              "gateway, defaults (--workers 1)": [(1, "c_seq"), (sync["clients"], "c_conc"),
                                                  (sync["scale_clients"], "w1_scale")],
              "gateway, rate limit + breakers": [(1, "p_seq"), (sync["clients"], "p_conc")],
              "gateway --workers 2": [(sync["scale_clients"], "w2_scale")]}
    for (label, points), marker in zip(series.items(), "osD^", strict=True):
        points = [(n, rows[key]["calls_per_s"]) for n, key in points if key in rows]
        if points:
            right.plot([n for n, _ in points], [v for _, v in points], marker=marker, label=label)
    right.set_xscale("log")
    right.set_xlabel("concurrent callers (threads with blocking clients)")
    right.set_ylabel("calls/s")
    right.set_ylim(bottom=0)
    right.set_title("Throughput against callers")
    right.legend(fontsize=8)
    ratios = sync["ratios"]
    fig.suptitle(f"CeleryGenApi vs plain Celery, {sync['date']} ({sync['code']}): ratio_p50 "
                 f"{ratios['ratio_p50']:.2f}, ratio_tput {ratios['ratio_tput']:.2f}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "performance.png",
                        help="the PNG to write (default docs/performance.png)")
    parser.add_argument("--no-plot", dest="plot", action="store_const", const=None, help="draw no plot")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for each script's JSON results (default: a new temporary directory)")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(SCRIPTS),
                        help="leave one benchmark out (repeatable)")
    for name in SCRIPTS:
        parser.add_argument(f"--{name}-arg", action="append", default=[], metavar="ARG",
                            help=f"pass ARG to bench_{name}.py (repeatable; write --{name}-arg=--flag)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="genapi-bench-all-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict | None] = {}
    for name in SCRIPTS:
        if name not in args.skip:
            results[name] = run_script(name, out, getattr(args, f"{name}_arg"))
    met = print_table(results)
    if args.plot is not None:
        plot(results, args.plot)
    print(f"results (JSON) in {out}")
    return 0 if met and all(r is not None for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Summarise py-spy collapsed-stack files (``bench_sync.py --profile DIR``).

    python bench/profile_summary.py DIR/c_conc-1-gateway.txt [--top 25] [--match TEXT]

Prints the number of samples, then the functions with the largest inclusive share (the
function is on the stack) and the largest self share (it is the innermost frame).
``--match`` shows only functions whose name or file contains TEXT.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_PROCESS = re.compile(r"^process \d+:")


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not frames or not count.isdigit():
            continue
        stacks.append(([f for f in frames.split(";") if not _PROCESS.match(f)], int(count)))
    return stacks


def summarise(path: Path, top: int, match: str | None) -> None:
    stacks = read(path)
    total = sum(count for _, count in stacks)
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        for frame in set(frames):
            inclusive[frame] += count
        if frames:
            own[frames[-1]] += count
    print(f"{path}: {total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"  {title}:")
        shown = [(f, c) for f, c in counter.most_common() if not match or match in f][:top]
        for frame, count in shown:
            print(f"    {100 * count / max(total, 1):5.1f}%  {frame}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default=None)
    args = parser.parse_args(argv)
    for path in args.files:
        summarise(path, args.top, args.match)
    return 0


if __name__ == "__main__":
    sys.exit(main())

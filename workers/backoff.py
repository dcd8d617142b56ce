"""The original's retry backoff (reference §4.5), shared by the gateway and the workers."""

from __future__ import annotations

import random

BASE_MS = 100
MAX_MS = 5000


def backoff_ms(attempt: int, base_ms: int = BASE_MS, max_ms: int = MAX_MS, jitter: bool = True) -> int:
    """``min(base × 2^(attempt−1), max)``, times a random factor in [0.5, 1.5) with jitter.

    Retries count ``attempt`` down (n, n−1, …, 1), so the first retry waits the longest:
    with n=3 about 400 ms, then 200 ms, then 100 ms (reference §7.2).
    """
    delay = min(base_ms * 2 ** (max(attempt, 1) - 1), max_ms)
    return int(delay * random.uniform(0.5, 1.5)) if jitter else int(delay)

"""Benchmarks (standalone scripts, not tests): ``python bench/bench_sync.py``."""

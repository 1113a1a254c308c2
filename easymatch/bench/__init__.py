"""Benchmarks behind tools/bench.py: each returns a dict of figures."""

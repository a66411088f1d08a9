"""Benchmarks (issue 8): ``make bench`` or ``python -m bench [--quick] [SCENARIO ...]``."""

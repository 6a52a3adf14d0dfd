"""Performance cases: ``python -m benchmarks [CASE ...]`` (or ``make bench [CASE ...]``).

The machinery is in ``benchmarks.harness``; the cases are registered in ``benchmarks.cases``.
"""

"""Benchmark protocols: one module per protocol (questions -> judge requests -> verdicts -> scores)."""

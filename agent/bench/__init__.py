"""Benchmark harness: simulated callers and measurements."""

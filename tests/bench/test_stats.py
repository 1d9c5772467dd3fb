from __future__ import annotations

from agent.bench.stats import gpu_mem_mb, percentiles


def test_percentiles() -> None:
    assert percentiles([]) == {"p50": None, "p95": None}
    assert percentiles([1.0, 2.0, 3.0]) == {"p50": 2.0, "p95": 2.9}


def test_gpu_mem_is_null_on_cpu() -> None:
    assert gpu_mem_mb("cpu") is None

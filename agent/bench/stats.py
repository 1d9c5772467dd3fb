"""Small measurement helpers shared by the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p95 of `values` (None when there is nothing to measure), rounded to 0.1."""
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1)}


def gpu_mem_mb(device: torch.device | str) -> float | None:
    """Peak CUDA memory allocated on `device` since the process started (None on CPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

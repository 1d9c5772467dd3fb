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


class Playout:
    """A listener who plays audio chunks as they arrive, from the first one on, without a jitter buffer.

    `stalled` sums the silences heard after playback started: a chunk that arrives after the audio before it
    has finished playing leaves a gap of the difference.
    """

    def __init__(self) -> None:
        self.stalled = 0.0
        self._ends: float | None = None

    def add(self, at: float, seconds: float) -> None:
        """A chunk of `seconds` of audio arrived at time `at` (seconds, any monotonic clock)."""
        if self._ends is not None and at > self._ends:
            self.stalled += at - self._ends
        self._ends = max(at, self._ends or at) + seconds


def gpu_mem_mb(device: torch.device | str) -> float | None:
    """Peak CUDA memory allocated on `device` since the process started (None on CPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

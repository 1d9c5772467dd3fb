from __future__ import annotations

import pytest

from agent.bench.stats import Playout, gpu_mem_mb, percentiles


def test_percentiles() -> None:
    assert percentiles([]) == {"p50": None, "p95": None}
    assert percentiles([1.0, 2.0, 3.0]) == {"p50": 2.0, "p95": 2.9}


def test_gpu_mem_is_null_on_cpu() -> None:
    assert gpu_mem_mb("cpu") is None


def test_playout_counts_the_silences_after_the_first_chunk() -> None:
    playout = Playout()
    playout.add(at=10.0, seconds=1.0)  # plays 10.0 .. 11.0
    playout.add(at=10.5, seconds=1.0)  # queued: plays 11.0 .. 12.0
    assert playout.stalled == 0.0
    playout.add(at=12.25, seconds=0.5)  # 0.25 s of silence, then 12.25 .. 12.75
    playout.add(at=12.5, seconds=0.5)
    assert playout.stalled == pytest.approx(0.25)
    playout.add(at=14.0, seconds=0.5)  # plays from 14.0: 0.75 s more silence
    assert playout.stalled == pytest.approx(1.0)

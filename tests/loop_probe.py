"""Measures how long the asyncio loop goes without running a task: proof that model work stays off it."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Self


class LoopLagProbe:
    """`async with LoopLagProbe() as probe: ...`; then `probe.gaps` holds each interval between 10 ms ticks."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.gaps: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._task is not None
        self._task.cancel()

    @property
    def max_gap(self) -> float:
        return max(self.gaps, default=0.0)

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

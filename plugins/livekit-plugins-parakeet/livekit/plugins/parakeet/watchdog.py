"""The scheduler's record of its own progress, from which `health()` is made: the iteration in progress (a
step running past `timeout` is stalled), the last iteration that did work, and failures in a row. Not
thread-safe: the scheduler uses it under its lock."""

from __future__ import annotations

import time

from .log import logger
from .results import EngineHealth


class Watchdog:
    def __init__(self, name: str, timeout: float) -> None:
        self.timeout = timeout
        self._name = name
        self._busy_since: float | None = None
        self._stall_reported = False
        self._last_done: float | None = None
        self.failures = 0
        self._last_failure = ""
        self._iteration_failed = False

    def begin(self) -> None:
        """An iteration starts work."""
        self._busy_since = time.monotonic()
        self._iteration_failed = False

    # an iteration's outcome is recorded before its results are delivered, so that health never lags them

    def succeeded(self) -> None:
        """Some of the iteration's work succeeded (unless it already failed, a good iteration)."""
        if not self._iteration_failed:
            self.failures = 0

    def failed(self, failure: str) -> None:
        """The iteration failed outside a step, or a step in it failed for all its inputs (`failure`: why)."""
        if not self._iteration_failed:
            self._iteration_failed = True
            self.failures += 1
        self._last_failure = failure

    def end(self, *, did_work: bool) -> None:
        now = time.monotonic()
        if self._busy_since is not None and now - self._busy_since > self.timeout:
            took = now - self._busy_since
            logger.warning(
                "STT engine %r: a step took %.1f s (watchdog %g s)", self._name, took, self.timeout
            )
        self._busy_since = None
        self._stall_reported = False
        if did_work:
            self._last_done = now

    def health(self, *, alive: bool, death: str, queue_depth: int) -> EngineHealth:
        now = time.monotonic()
        running = None if self._busy_since is None else now - self._busy_since
        if not alive:
            reason = "STT engine " + (f"scheduler thread died: {death}" if death else "closed")
        elif running is not None and running > self.timeout:
            reason = f"STT step running for {running:.1f} s (watchdog {self.timeout:g} s)"
            if not self._stall_reported:  # the watchdog's finding, logged once per stall
                self._stall_reported = True
                logger.error("STT engine %r: %s", self._name, reason)
        elif self.failures:
            reason = f"{self.failures} consecutive STT engine failure(s), last: {self._last_failure}"
        else:
            reason = ""
        return EngineHealth(
            alive=alive,
            healthy=not reason,
            last_step_age=None if self._last_done is None else now - self._last_done,
            queue_depth=queue_depth,
            consecutive_failures=self.failures,
            reason=reason,
        )

"""The engine's vital signs: EngineHealth, and the monitor (with its watchdog) that the scheduler reports to."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .log import logger


@dataclass(frozen=True)
class EngineHealth:
    alive: bool
    """the worker thread is running"""
    healthy: bool
    """alive, no step stalled, and no failure since the last good loop iteration"""
    last_step_age: float | None
    """seconds since the worker last completed a loop iteration that did work; None before any"""
    queue_depth: int
    """requests waiting or running"""
    consecutive_failures: int
    """loop iterations that failed outside a step, or whose steps all failed, since the last good one"""
    reason: str
    """"" when healthy, else one line"""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Monitor:
    """What the worker thread is doing and how its last iterations went; read from any thread.

    Its watchdog thread logs a step that has run longer than `watchdog_timeout`: a hung kernel or a deadlock
    shows in health() and in the log, though nothing can interrupt it.
    """

    def __init__(self, watchdog_timeout: float) -> None:
        if watchdog_timeout <= 0:
            raise ValueError("watchdog_timeout must be positive")
        self._timeout = watchdog_timeout
        self._lock = threading.Lock()
        self._step: tuple[str, float] | None = None  # the step running, since when
        self._worked_at: float | None = None
        self._failures = 0
        self._last_failure = ""
        self._iteration_failed = False
        self._stopped = ""  # why the worker thread is gone
        self._closing = threading.Event()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        with self._lock:
            self._step = (name, time.monotonic())
        try:
            yield
        finally:
            with self._lock:
                self._step = None

    def step_failed(self, reason: str) -> None:
        """A step failed for every request in it: this iteration failed (counted at once, before the
        requests hear of it)."""
        with self._lock:
            if not self._iteration_failed:
                self._failures += 1
            self._iteration_failed = True
            self._last_failure = reason

    def end_iteration(self, worked: bool) -> None:
        """An iteration that did work with no step failing for all its requests resets the failure count."""
        with self._lock:
            if worked:
                self._worked_at = time.monotonic()
                if not self._iteration_failed:
                    self._failures = 0
            self._iteration_failed = False

    def loop_failed(self, reason: str) -> None:
        """The iteration failed outside a step."""
        self.step_failed(reason)
        with self._lock:
            self._iteration_failed = False

    def stopped(self, reason: str) -> None:
        """The worker thread is ending (closed, or died)."""
        with self._lock:
            self._stopped = reason
        self._closing.set()

    def stalled(self) -> tuple[str, float] | None:
        """(step, seconds running) of a step running longer than the watchdog timeout."""
        with self._lock:
            step = self._step
        if step is None:
            return None
        name, since = step
        age = time.monotonic() - since
        return (name, age) if age > self._timeout else None

    def health(self, *, alive: bool, queue_depth: int) -> EngineHealth:
        with self._lock:
            stopped, failures, last_failure, worked_at = (
                self._stopped,
                self._failures,
                self._last_failure,
                self._worked_at,
            )
        stalled = self.stalled()
        alive = alive and not stopped
        if not alive:
            reason = stopped or "TTS engine thread is not running"
        elif stalled is not None:
            reason = f"TTS step running for {stalled[1]:.1f} s ({stalled[0]})"
        elif failures:
            reason = f"TTS engine failed {failures} time(s) in a row: {last_failure}"
        else:
            reason = ""
        return EngineHealth(
            alive=alive,
            healthy=not reason,
            last_step_age=None if worked_at is None else time.monotonic() - worked_at,
            queue_depth=queue_depth,
            consecutive_failures=failures,
            reason=reason,
        )

    def start_watchdog(self, name: str) -> None:
        threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True).start()

    def _watch(self) -> None:
        reported: tuple[str, float] | None = None  # the stalled step already logged
        while not self._closing.wait(min(1.0, self._timeout / 4)):
            with self._lock:
                step = self._step
            stalled = self.stalled()
            if stalled is not None and step != reported:
                logger.error("Chatterbox TTS step %r has been running for %.1f s: stalled", *stalled)
                reported = step
            elif reported is not None and step != reported:
                logger.warning("Chatterbox TTS step %r finished after stalling", reported[0])
                reported = None

"""The one thread that writes saved conversations: every call's events arrive on a queue from any thread or
event loop (never blocking it) and are committed one by one, so a crash loses at most what is still queued
(the turn in progress). A failed write is logged and counted, never raised into the call; retention pruning
runs here too, at start and then every `prune_every` seconds."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("voice_agent.conversations")

MAX_QUEUED = 10_000  # beyond this, writes are dropped (counted) rather than holding memory without bound


@dataclass
class _Write:
    fn: Callable[..., Any]
    args: tuple[Any, ...]


_STOP = object()


class Writer:
    def __init__(
        self,
        name: str,
        *,
        prune: Callable[[], int] | None = None,
        prune_every: float = 3600.0,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._queue: queue.Queue[_Write | threading.Event | object] = queue.Queue(max_queued)
        self._prune = prune
        self._prune_every = prune_every
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._stopping = False
        self._lock = threading.Lock()  # submit() runs on many threads
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)`; returns at once, from any thread."""
        if self._stopping or not self.alive:
            self._drop("the writer has stopped")
            return
        try:
            self._queue.put_nowait(_Write(fn, args))
        except queue.Full:
            self._drop(f"{self._queue.maxsize} writes queued")

    def _drop(self, why: str) -> None:
        with self._lock:
            self.dropped += 1
            dropped = self.dropped
        if dropped == 1 or dropped % 1000 == 0:
            logger.error("conversation writes are dropped: %s (%d so far)", why, dropped)

    def flush(self, timeout: float = 10.0) -> bool:
        """Blocks until everything queued before this call is written (or failed); False on timeout."""
        done = threading.Event()
        if not self.alive:
            return False
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        self._stopping = True
        if self.alive:
            self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("the conversation writer did not finish within %.0f s", timeout)

    def health(self) -> dict[str, Any]:
        return {
            "ok": self.alive or self._stopping,
            "alive": self.alive,
            "queued": self._queue.qsize(),
            "written": self.written,
            "failed": self.failed,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException:
            # not a write failure (those are caught below): health reports the thread as dead from now on
            logger.exception("the conversation writer stopped")

    def _serve(self) -> None:
        next_prune = time.monotonic()
        while True:
            if self._prune is not None and time.monotonic() >= next_prune:
                self._call(self._prune, ())
                next_prune = time.monotonic() + self._prune_every
            wait = max(0.0, next_prune - time.monotonic()) if self._prune is not None else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
            elif isinstance(item, _Write) and self._call(item.fn, item.args):
                self.written += 1

    def _call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - any failure of one write is logged; the call goes on
            self.failed += 1
            first_line = str(e).splitlines()[0] if str(e) else ""
            self.last_error = f"{type(e).__name__}: {first_line}"
            logger.error("a conversation write failed (%s)", self.last_error)
            return False
        return True

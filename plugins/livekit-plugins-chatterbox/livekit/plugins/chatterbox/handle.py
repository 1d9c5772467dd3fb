"""SynthesisHandle: one request's audio, delivered by the worker thread to the event loop that asked for it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol

from livekit.agents import APIError


class SynthesisError(APIError):
    """A synthesis request failed. Retryable unless the engine itself is gone (closed, or its thread died)."""


class End:
    """The end of a request's audio."""


Item = bytes | End | SynthesisError


class Sink(Protocol):
    """Where the worker thread delivers a request's audio: a SynthesisHandle, or warm-up's blocking sink."""

    @property
    def cancelled(self) -> bool: ...

    @property
    def cancelled_at(self) -> float: ...

    def deliver(self, item: Item) -> None: ...

    def release(self, at: float) -> None: ...


class SynthesisHandle:
    """One request's audio: int16 mono PCM chunks at 24 kHz, read with `async for` on the loop that made it.

    Iteration ends when the audio is complete or the handle is cancelled; it raises SynthesisError on failure.
    `deliver` and `release` are the worker thread's side.
    """

    def __init__(self, request_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.request_id = request_id
        self._loop = loop
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._cancelled_at = 0.0
        self._finished = False
        self._stopped: asyncio.Future[float] = loop.create_future()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def cancelled_at(self) -> float:
        """time.monotonic() of cancel(); 0 if not cancelled."""
        return self._cancelled_at

    def cancel(self) -> None:
        """Stop the work (at the next token), or drop it if still queued, and end iteration. Any thread."""
        if not self._cancelled.is_set():
            self._cancelled_at = time.monotonic()
            self._cancelled.set()
            self._post(End())

    def deliver(self, item: Item) -> None:
        if not self._cancelled.is_set():
            self._post(item)

    async def stopped(self) -> float:
        """Wait until the engine has let go of this request: finished, failed, or cancelled and dropped.
        Returns, in time.monotonic() seconds, when its last work ended: after cancel(), the end of the token
        step or chunk of this request that was running then, or cancel() itself if none was."""
        return await asyncio.shield(self._stopped)

    def release(self, at: float) -> None:
        try:
            self._loop.call_soon_threadsafe(self._set_stopped, at)
        except RuntimeError:  # the consumer's loop is closed
            pass

    def _set_stopped(self, at: float) -> None:
        if not self._stopped.done():
            self._stopped.set_result(at)

    def _post(self, item: Item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody will read this audio
            self._cancelled.set()

    def __aiter__(self) -> SynthesisHandle:
        return self

    async def __anext__(self) -> bytes:
        if self._finished:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, bytes):
            return item
        self._finished = True
        if isinstance(item, SynthesisError):
            raise item
        raise StopAsyncIteration

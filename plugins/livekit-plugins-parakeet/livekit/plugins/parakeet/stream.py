"""The handle of one live stream on an engine (`ParakeetEngine.open_stream`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from .steps import StreamState
from .streaming import StreamStats, StreamUpdate


class StreamHost(Protocol):
    """What serves a stream: the scheduler."""

    def update_stream(self, stream: EngineStream, change: Callable[[StreamState], None]) -> None: ...

    def close_stream(self, stream: EngineStream) -> None: ...

    def stream_stats(self, stream: EngineStream) -> StreamStats: ...


class EngineStream:
    """A live stream on the engine. `push` audio (float32 mono at the engine's rate) and `flush` to end a
    segment; `on_update` receives interim and final `StreamUpdate`s and `on_error` a failure that ended the
    stream, both called from the engine thread. All methods are thread-safe and non-blocking."""

    def __init__(
        self,
        host: StreamHost,
        state: StreamState,
        on_update: Callable[[StreamUpdate], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self._host = host
        # owned by the host, under its lock
        self._state = state
        self._on_update = on_update
        self._on_error = on_error
        self._closed = False

    @property
    def closed(self) -> bool:
        """closed by `close`, or ended by the engine (after `on_error`)"""
        return self._closed

    def push(self, pcm: np.ndarray) -> None:
        audio = np.asarray(pcm, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"expected mono PCM (1-D array), got shape {audio.shape}")
        self._host.update_stream(self, lambda s: s.push(audio))

    def flush(self) -> None:
        """End the current segment: its final arrives after one step over the audio not yet decoded."""
        self._host.update_stream(self, StreamState.flush)

    def close(self) -> None:
        """Leave the engine at once, freeing the stream's slot; callbacks stop (one already running ends)."""
        self._host.close_stream(self)

    @property
    def stats(self) -> StreamStats:
        return self._host.stream_stats(self)

"""The data of live streams: window configuration, the updates a stream delivers, its stats, and what a step
returns for one stream (see steps/ for the model math and each family's per-stream bookkeeping)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StreamingConfig:
    """Window sizes of buffered streaming, in seconds; each is rounded to whole encoder frames (80 ms for
    Parakeet). Interim text lags the audio by about chunk + right; every step encodes left + chunk + right
    seconds per stream, so compute per second of audio is about (left + chunk + right) / chunk times that of
    one offline pass. The defaults suit conversation: turns rarely need more than a few seconds of history,
    and a final costs one step over at most chunk + right seconds of new audio."""

    left: float = 5.6
    chunk: float = 0.48
    right: float = 0.32

    def __post_init__(self) -> None:
        if self.left < 0 or self.right < 0 or self.chunk <= 0:
            raise ValueError(f"invalid streaming windows {self}: left/right must be >= 0 and chunk > 0")


@dataclass(frozen=True)
class StreamUpdate:
    """A transcript of the current segment: interim after a step that changed it, final after a flush."""

    text: str
    final: bool
    confidence: float
    """mean token confidence in [0, 1]; 0.0 when `text` is empty"""
    start_time: float
    """seconds since the stream opened where the segment starts"""
    end_time: float
    """seconds since the stream opened up to which audio was decoded"""
    frames_encoded: int
    """encoder frames computed for this segment so far, context windows included"""
    end_of_utterance: bool = False
    """a final because the model emitted its end-of-utterance token, not because of a flush"""


@dataclass
class StreamStats:
    steps: int = 0
    frames_encoded: int = 0
    segments: int = 0


@dataclass(frozen=True)
class StepOutput:
    """One stream's result of a step."""

    tokens: list[int]
    confidences: list[float]
    decoder_state: Any
    frames_encoded: int
    encoder_cache: Any = None
    """cache-aware models: the stream's encoder caches after the step"""

"""What the engine reports: transcripts of whole utterances, step statistics and health."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float
    """mean word confidence in [0, 1]; 0.0 when `text` is empty"""
    audio_duration: float
    """seconds of audio transcribed"""
    inference_time: float
    """seconds spent on the batch this utterance was part of"""
    batch_size: int


@dataclass(frozen=True)
class EngineStats:
    steps: int
    """streaming steps (batched forward passes) run since the engine started"""
    batch_sizes: list[int]
    """streams per step, for the most recent steps (oldest first)"""
    step_seconds: list[float]
    """duration of each of those steps"""
    compute_seconds: float
    """total duration of all streaming steps"""
    stream_inputs: int
    """stream chunks processed by all streaming steps (`stream_inputs / steps`: the mean batch size)"""


@dataclass(frozen=True)
class EngineHealth:
    alive: bool
    """the scheduler thread is running (not closed, not died)"""
    healthy: bool
    """alive, no step running past the watchdog timeout, and no consecutive failures"""
    last_step_age: float | None
    """seconds since the scheduler last completed an iteration that did work; None before any"""
    queue_depth: int
    """requests waiting plus streams with a chunk ready"""
    consecutive_failures: int
    """scheduler iterations that failed outside a step, or steps where every stream failed; reset by the next
    good iteration"""
    reason: str
    """"" when healthy, else one line saying why not"""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

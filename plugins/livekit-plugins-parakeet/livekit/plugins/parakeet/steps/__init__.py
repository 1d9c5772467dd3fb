"""The model math, one module per model family or stage. `Steps` is the seam the scheduler calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import EngineClosedError
from ..streaming import StepOutput
from .buffered import BufferedStep, StepInput, StreamState
from .cache_aware import (
    CacheAwareInput,
    CacheAwareState,
    CacheAwareStep,
    Chunking,
    chunking_of,
    is_cache_aware,
)
from .decoding import Decoder, ModelContext
from .utterance import UtteranceStep

StreamStep = Callable[[list[Any]], list[StepOutput]]
"""a batched streaming step: each stream's `StepInput` (buffered) or `CacheAwareInput` → its `StepOutput`"""
UtteranceBatch = Callable[[list[np.ndarray]], list[tuple[str, float]]]
"""whole utterances → (text, confidence) each"""


@dataclass
class Steps:
    """What the scheduler runs, one callable per kind of work, each returning one output per input, in order.
    The scheduler reads them at every call: replace one (e.g. with a wrapper) to observe steps or inject
    faults."""

    stream: StreamStep
    utterance: UtteranceBatch

    @classmethod
    def for_model(cls, context: ModelContext, chunking: Chunking | None) -> Steps:
        """Cache-aware steps when the encoder streams natively (`chunking`), else buffered ones."""
        decode = Decoder(context)
        stream = (
            BufferedStep(context, decode) if chunking is None else CacheAwareStep(context, decode, chunking)
        )
        return cls(stream=stream, utterance=UtteranceStep(context))

    def release(self, error: EngineClosedError) -> None:
        """Drop the model (the engine stopped): any later call raises `error`."""

        def stopped(inputs: list[Any]) -> list[Any]:
            raise error

        self.stream = self.utterance = stopped


__all__ = [
    "BufferedStep",
    "CacheAwareInput",
    "CacheAwareState",
    "CacheAwareStep",
    "Chunking",
    "Decoder",
    "ModelContext",
    "StepInput",
    "Steps",
    "StreamState",
    "StreamStep",
    "UtteranceBatch",
    "UtteranceStep",
    "chunking_of",
    "is_cache_aware",
]

"""Expectations about synthetic-tiny audio, shared by the Chatterbox tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from chatterbox.tts import punc_norm
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox import synthetic


def expected_seconds(text: str) -> float:
    """Audio length of a synthetic-tiny utterance: its speech-token budget, 40 ms per token."""
    return 0.04 * round(synthetic.TOKENS_PER_CHAR * len(punc_norm(text)))


def frame_energies(pcm: np.ndarray, sample_rate: int = 24000) -> np.ndarray:
    """Mean |int16| of each whole 20 ms frame."""
    size = sample_rate // 50
    frames = pcm[: len(pcm) // size * size].reshape(-1, size)
    return np.abs(frames.astype(np.float32)).mean(axis=1)


def fail_vocoder_once(engine: chatterbox.ChatterboxEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's next HiFT call raises "vocoder exploded"; later calls work."""
    hift = engine.model.tts.s3gen.mel2wav
    real_inference = hift.inference
    calls = 0

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("vocoder exploded")
        return real_inference(*args, **kwargs)

    monkeypatch.setattr(hift, "inference", fail_once)

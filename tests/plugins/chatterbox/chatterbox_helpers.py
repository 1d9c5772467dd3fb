"""Expectations about synthetic-tiny audio, shared by the Chatterbox tests."""

from __future__ import annotations

import numpy as np
from chatterbox.tts import punc_norm
from livekit.plugins.chatterbox import synthetic


def expected_seconds(text: str) -> float:
    """Audio length of a synthetic-tiny utterance: its speech-token budget, 40 ms per token."""
    return 0.04 * round(synthetic.TOKENS_PER_CHAR * len(punc_norm(text)))


def frame_energies(pcm: np.ndarray, sample_rate: int = 24000) -> np.ndarray:
    """Mean |int16| of each whole 20 ms frame."""
    size = sample_rate // 50
    frames = pcm[: len(pcm) // size * size].reshape(-1, size)
    return np.abs(frames.astype(np.float32)).mean(axis=1)

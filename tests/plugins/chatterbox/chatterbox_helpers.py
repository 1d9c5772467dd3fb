"""Expectations about synthetic-tiny audio, shared by the Chatterbox tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from chatterbox.tts import punc_norm
from livekit.plugins import chatterbox
from livekit.plugins.chatterbox import testing
from livekit.plugins.chatterbox.steps import vocoder


def expected_seconds(text: str) -> float:
    """Audio length of a synthetic-tiny utterance: its speech-token budget, 40 ms per token."""
    return 0.04 * round(testing.TOKENS_PER_CHAR * len(punc_norm(text)))


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


def assert_batched_flow_matches_alone(engine: chatterbox.ChatterboxEngine, *, meanflow: bool) -> None:
    """Rows of different lengths (first chunks, later windows, final and not) in one flow call get the frames
    each gets alone: padding and masks keep them apart."""
    s3gen, ref = engine.model.tts.s3gen, engine.model.tts.conds.gen
    generator = torch.Generator().manual_seed(3)
    rows = []
    with torch.inference_mode():
        for i, (n_tokens, final) in enumerate([(20, False), (33, True), (90, False)]):
            chunks = vocoder.ChunkVocoder(
                s3gen, ref, n_timesteps=2, meanflow=meanflow, generator=torch.Generator().manual_seed(i)
            )
            tokens = torch.randint(0, 6561, (n_tokens,), generator=generator).tolist()
            if n_tokens > 60:  # a later window: the flow has produced frames before
                chunks.push(tokens[:60], final=False)
                tokens = tokens[60:]
            row = chunks.flow_input(tokens, final=final)
            assert row is not None
            rows.append(row)
        alone = [vocoder.run_flow(s3gen, [row], n_timesteps=2, meanflow=meanflow)[0] for row in rows]
        together = vocoder.run_flow(s3gen, rows, n_timesteps=2, meanflow=meanflow)
    assert len({row.mu.shape[1] for row in rows}) == 3
    for one, batched in zip(alone, together, strict=True):
        assert one.shape == batched.shape and one.shape[2] > 0
        assert torch.allclose(one, batched, atol=1e-4), (one - batched).abs().max()

"""Cache-aware streaming (steps/cache_aware.py): streamed encoder frames and transcripts equal offline ones for
every look-ahead, streams share steps, finals of every remainder length, and the STT on such an engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from livekit.agents import stt
from livekit.plugins import parakeet
from livekit.plugins.parakeet import testing as sa
from livekit.plugins.parakeet.steps import CacheAwareStep
from livekit.plugins.parakeet.streaming import StepOutput
from parakeet_helpers import (
    finish,
    open_stream,
    private_engine,
    push,
    resample,
    split_frames,
    to_frame,
    utterance,
    words,
)


def cache_aware_engine(att_context_size: tuple[int, int]) -> parakeet.ParakeetEngine:
    return private_engine("synthetic-tiny-cache-aware", att_context_size=att_context_size)


@pytest.mark.parametrize("att_context_size", [(70, 1), (70, 0), (70, 6)])
async def test_cache_aware_streaming_equals_offline(
    synthetic_cache: Path, att_context_size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = cache_aware_engine(att_context_size)
    try:
        assert engine.family == "cache-aware" and "cache-aware" in engine.describe()
        step = engine.steps.stream
        assert isinstance(step, CacheAwareStep)
        model = step.context.model
        assert model.encoder.att_context_size == list(att_context_size)
        decode = step.decode

        clips = [utterance(1.1, seed=40), utterance(2.3, seed=41)]
        offline_text = [(await engine.transcribe(c)).text for c in clips]
        with torch.inference_mode():
            offline_frames = [
                model(input_signal=torch.from_numpy(c)[None], input_signal_length=torch.tensor([len(c)]))[0][
                    0
                ].T
                for c in clips
            ]
        for clip, text, reference in zip(clips, offline_text, offline_frames, strict=True):
            captured: list[torch.Tensor] = []

            def spy(
                chunks: list[torch.Tensor], states: list[object], frames: list[int], into: list = captured
            ) -> list[StepOutput]:
                into.extend(c.clone() for c in chunks)  # the encoder frames each step decodes
                return decode(chunks, states, frames)

            monkeypatch.setattr(step, "decode", spy)
            stream, listener = open_stream(engine)
            push(stream, clip)
            await asyncio.sleep(0.5)  # steps over the full chunks, then the final over the rest
            stream.flush()
            await listener.wait_final()
            stream.close()
            assert listener.finals[0].text == text and words(text)
            assert stream.stats.steps > 2
            streamed = torch.cat(captured)
            assert streamed.shape == reference.shape
            torch.testing.assert_close(streamed, reference, atol=1e-4, rtol=1e-4)
    finally:
        engine.close()


async def test_cache_aware_streams_share_steps(synthetic_cache: Path) -> None:
    engine = cache_aware_engine((70, 1))
    try:
        clips = [utterance(0.9 + 0.6 * i, seed=50 + i) for i in range(3)]
        offline = [(await engine.transcribe(c)).text for c in clips]
        opened = [open_stream(engine) for _ in clips]
        for (stream, _), clip in zip(opened, clips, strict=True):
            push(stream, clip)
        assert await finish(opened) == offline
        assert max(engine.stats().batch_sizes) > 1
    finally:
        engine.close()


def test_att_context_size_is_for_cache_aware_models(tiny_nemo: Path) -> None:
    with pytest.raises(ValueError, match="cache-aware"):
        private_engine(att_context_size=(70, 1))


async def test_stt_streams_on_a_cache_aware_engine(synthetic_cache: Path) -> None:
    engine = cache_aware_engine((70, 1))
    try:
        clip = utterance(1.6, seed=60)
        speech_stt = parakeet.STT(engine=engine)
        offline = (await speech_stt.recognize(to_frame(clip))).alternatives[0].text
        async with speech_stt.stream() as stream:
            for frame in split_frames(to_frame(resample(clip, 48000), 48000)):
                stream.push_frame(frame)
            stream.end_input()
            events = [ev async for ev in stream]
        finals = [ev.alternatives[0].text for ev in events if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
        # resampling to 48 kHz and back moves samples a little: compare word counts
        assert len(words(finals[0])) == pytest.approx(len(words(offline)), abs=1) and words(offline)
        assert stt.SpeechEventType.INTERIM_TRANSCRIPT in [ev.type for ev in events]
    finally:
        engine.close()


async def test_cache_aware_finals_of_every_remainder_length(synthetic_cache: Path) -> None:
    # [70,0] chunks are 8 mel frames: these lengths leave 0..8 of them (some: no encoder frame) to the final
    engine = cache_aware_engine((70, 0))
    try:
        for k in range(9):
            clip = sa.speech_like(1.0 + k * 0.01 + 0.003, seed=k)
            stream, listener = open_stream(engine)
            push(stream, clip)
            await asyncio.sleep(0.1)
            stream.flush()
            await listener.wait_final()
            stream.close()
            assert listener.finals[0].text == (await engine.transcribe(clip)).text, f"remainder {k}"
    finally:
        engine.close()

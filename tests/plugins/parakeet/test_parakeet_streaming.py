"""Engine streams: buffered streaming equals offline, shared batched steps, cancelling, prompt finals and
failures isolated to the streams they hit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from livekit.agents import stt
from livekit.plugins import parakeet
from livekit.plugins.parakeet import models, synthetic
from livekit.plugins.parakeet import synthetic_audio as sa
from livekit.plugins.parakeet.streaming import StepInput, StepOutput
from parakeet_helpers import FRAME, Listener, open_stream, push, resample, split_frames, to_frame, words

RATE = 16000


def full_steps(samples: int, config: parakeet.StreamingConfig) -> int:
    """Steps a stream takes before a flush, when all its audio is there."""
    chunk, right = round(config.chunk * RATE), round(config.right * RATE)
    return 0 if samples < chunk + right else (samples - chunk - right) // chunk + 1


async def wait_steps(stream: parakeet.EngineStream, steps: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stream.stats.steps < steps:
        assert time.monotonic() < deadline, f"{stream.stats.steps} of {steps} steps"
        await asyncio.sleep(0.01)


async def finish(opened: list[tuple[parakeet.EngineStream, Listener]]) -> list[str]:
    """Flush every stream, wait for each final, close the streams; the finals' texts in order."""
    for stream, _ in opened:
        stream.flush()
    for stream, listener in opened:
        await listener.wait_final()
        stream.close()
    return [listener.finals[0].text for _, listener in opened]


def utterance(seconds: float, seed: int) -> np.ndarray:
    return sa.pad(sa.speech_like(seconds, seed=seed), before=0.4, after=0.5)


@pytest.mark.parametrize(
    "config",
    [
        parakeet.StreamingConfig(),
        parakeet.StreamingConfig(left=0.8, chunk=0.16, right=0.16),
        parakeet.StreamingConfig(left=2.0, chunk=0.64, right=0.0),
    ],
    ids=["default", "small", "no-right-context"],
)
async def test_streaming_equals_offline(
    tiny_engine: parakeet.ParakeetEngine, config: parakeet.StreamingConfig
) -> None:
    for seed, seconds in [(1, 1.3), (2, 2.9)]:
        audio = utterance(seconds, seed)
        offline = (await tiny_engine.transcribe(audio)).text
        stream, listener = open_stream(tiny_engine, config)
        push(stream, audio)
        steps = full_steps(len(audio), config)
        await wait_steps(stream, steps)
        stream.flush()
        await listener.wait_final()
        stream.close()

        assert words(offline) and set(words(offline)) == {synthetic.SYNTHETIC_WORD}
        final = listener.finals[0]
        assert final.text == offline
        assert final.end_time == pytest.approx(len(audio) / RATE)
        assert 0.0 < final.confidence <= 1.0
        interims = [u.text for u in listener.updates if not u.final]
        assert interims, "interim transcripts while audio streams in"
        assert all(offline.startswith(text) for text in interims)
        assert stream.stats.steps == steps + 1  # the final is ONE more step


async def test_final_is_one_step_over_the_rest_not_the_utterance(
    tiny_engine: parakeet.ParakeetEngine,
) -> None:
    config = parakeet.StreamingConfig(left=0.8, chunk=0.32, right=0.16)
    window_frames = round((config.left + config.chunk + config.right) / tiny_engine.frame_seconds) + 1
    audio = utterance(8.0, seed=5)
    stream, listener = open_stream(tiny_engine, config)
    push(stream, audio)
    steps = full_steps(len(audio), config)
    await wait_steps(stream, steps)
    before = stream.stats.frames_encoded
    stream.flush()
    await listener.wait_final()
    stream.close()

    assert stream.stats.frames_encoded - before <= window_frames  # the flush step re-encodes one window
    total = listener.finals[0].frames_encoded
    utterance_frames = len(audio) / RATE / tiny_engine.frame_seconds
    # linear in the utterance: (left + chunk + right) / chunk frames per frame of audio at most
    assert total <= (steps + 1) * window_frames
    assert (
        total <= utterance_frames * window_frames / (config.chunk / tiny_engine.frame_seconds) + window_frames
    )


async def test_segments_are_independent_and_silence_says_nothing(
    tiny_engine: parakeet.ParakeetEngine,
) -> None:
    first, second = utterance(1.2, seed=3), utterance(2.0, seed=4)
    stream, listener = open_stream(tiny_engine)
    push(stream, first)
    stream.flush()
    push(stream, np.zeros(2 * RATE, np.float32))
    stream.flush()
    stream.flush()  # nothing since the last flush: an empty final, no step
    push(stream, second)
    stream.flush()
    await listener.wait_final(4)
    stream.close()

    texts = [u.text for u in listener.finals]
    assert texts == [
        (await tiny_engine.transcribe(first)).text,
        "",
        "",
        (await tiny_engine.transcribe(second)).text,
    ]
    assert [u.confidence for u in listener.finals][1:3] == [0.0, 0.0]
    assert listener.finals[3].start_time == pytest.approx((len(first) + 2 * RATE) / RATE)
    assert stream.stats.segments == 4


async def test_concurrent_streams_share_batched_steps(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_step = tiny_engine._run_step

    def slow_step(inputs: list[StepInput]) -> list[StepOutput]:
        time.sleep(0.05)  # a busy GPU: the others' chunks become ready meanwhile
        return run_step(inputs)

    monkeypatch.setattr(tiny_engine, "_run_step", slow_step)
    clips = [utterance(0.8 + 0.7 * i, seed=10 + i) for i in range(4)]
    offline = [(await tiny_engine.transcribe(c)).text for c in clips]
    steps_before = tiny_engine.stats().steps
    opened = [open_stream(tiny_engine) for _ in clips]
    for i in range(0, max(len(c) for c in clips), FRAME):  # the streams advance together, in real time order
        for (stream, _), clip in zip(opened, clips, strict=True):
            if i < len(clip):
                stream.push(clip[i : i + FRAME])
        if i % (8 * FRAME) == 0:
            await asyncio.sleep(0.01)
    assert await finish(opened) == offline
    assert len(set(offline)) == len(offline)  # different lengths, different transcripts
    stats = tiny_engine.stats()
    recent = stats.batch_sizes[-(stats.steps - steps_before) :]
    assert max(recent) > 1
    assert sum(recent) == sum(s.stats.steps for s, _ in opened)
    assert tiny_engine.active_streams == 0


async def test_closing_a_stream_midway_leaves_the_others_correct(
    tiny_engine: parakeet.ParakeetEngine,
) -> None:
    clips = [utterance(2.5, seed=20 + i) for i in range(3)]
    offline = [(await tiny_engine.transcribe(c)).text for c in clips]
    opened = [open_stream(tiny_engine) for _ in clips]
    half = len(clips[0]) // 2
    for (stream, _), clip in zip(opened, clips, strict=True):
        push(stream, clip[:half])
    victim, victim_listener = opened[1]
    await wait_steps(victim, 1)
    victim.close()
    assert tiny_engine.active_streams == 2
    with pytest.raises(RuntimeError, match="closed"):
        victim.push(clips[1][half:])
    for stream, clip in [(opened[0][0], clips[0]), (opened[2][0], clips[2])]:
        push(stream, clip[half:])
        stream.flush()
    for i in (0, 2):
        await opened[i][1].wait_final()
        opened[i][0].close()

    assert [opened[i][1].finals[0].text for i in (0, 2)] == [offline[0], offline[2]]
    assert not victim_listener.finals and not victim_listener.errors


async def test_a_failing_step_fails_only_its_stream(
    tiny_engine: parakeet.ParakeetEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = utterance(2.0, seed=30)
    poison[RATE // 2] = 0.987654  # a marker the failing step recognises in its window
    run_step = tiny_engine._run_step

    def step_or_fail(inputs: list[StepInput]) -> list[StepOutput]:
        time.sleep(0.02)
        if any(np.any(i.audio == np.float32(0.987654)) for i in inputs):
            raise RuntimeError("kernel exploded")
        return run_step(inputs)

    monkeypatch.setattr(tiny_engine, "_run_step", step_or_fail)
    good = [utterance(2.0, seed=31 + i) for i in range(2)]
    offline = [(await tiny_engine.transcribe(c)).text for c in good]
    opened = [open_stream(tiny_engine) for _ in range(3)]
    for (stream, _), clip in zip(opened, [good[0], poison, good[1]], strict=True):
        push(stream, clip)
    for stream, _ in opened:
        stream.flush()
    await opened[1][1].wait_error()
    for i in (0, 2):
        await opened[i][1].wait_final()
        opened[i][0].close()

    assert [opened[i][1].finals[0].text for i in (0, 2)] == offline
    assert "kernel exploded" in str(opened[1][1].errors[0]) and not opened[1][1].finals
    assert tiny_engine.active_streams == 0  # the failed stream left the engine
    # the engine goes on serving new streams
    stream, listener = open_stream(tiny_engine)
    push(stream, good[0])
    stream.flush()
    await listener.wait_final()
    stream.close()
    assert listener.finals[0].text == offline[0]


async def test_closing_the_engine_fails_open_streams(tiny_engine: parakeet.ParakeetEngine) -> None:
    import torch
    from livekit.plugins.parakeet import models

    engine = parakeet.ParakeetEngine(
        models.load_asr_model("synthetic-tiny", torch.device("cpu")),
        model_name="private",
        device=torch.device("cpu"),
    )
    stream, listener = open_stream(engine)
    push(stream, utterance(1.0, seed=1))
    engine.close()
    await listener.wait_error()
    assert isinstance(listener.errors[0], parakeet.EngineClosedError)
    with pytest.raises(parakeet.EngineClosedError):
        open_stream(engine)


# -- cache-aware models ------------------------------------------------------------------------------------


def cache_aware_engine(att_context_size: tuple[int, int]) -> parakeet.ParakeetEngine:
    return parakeet.ParakeetEngine(
        models.load_asr_model("synthetic-tiny-cache-aware", torch.device("cpu")),
        model_name="synthetic-tiny-cache-aware",
        device=torch.device("cpu"),
        att_context_size=att_context_size,
    )


@pytest.mark.parametrize("att_context_size", [(70, 1), (70, 0), (70, 6)])
async def test_cache_aware_streaming_equals_offline(
    synthetic_cache: Path, att_context_size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = cache_aware_engine(att_context_size)
    try:
        assert engine.family == "cache-aware" and "cache-aware" in engine.describe()
        model = engine._model
        assert model is not None and model.encoder.att_context_size == list(att_context_size)
        decode = engine._decode

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

            monkeypatch.setattr(engine, "_decode", spy)
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
        parakeet.ParakeetEngine(
            models.load_asr_model(str(tiny_nemo), torch.device("cpu")),
            model_name="private",
            device=torch.device("cpu"),
            att_context_size=(70, 1),
        )


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
